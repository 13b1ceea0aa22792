#!/usr/bin/env bash
# The merge job: plan the merged inventory again; apply it when what the merge causes is what its
# pull request's reviewers saw and nothing else changed; otherwise post the new plan and stop.
# Runs only in the protected job (GitHub environment `production`, GitLab protected branch), the
# only one given RECONCILER_BIND_DN / RECONCILER_BIND_PASSWORD.
#   INVENTORY                the inventory folder in the checkout (default .)
#   RECONCILER_DIRECTORY     the live directory
#   MERGED_SHA               the commit on the main branch (GITHUB_SHA / CI_COMMIT_SHA)
#   RECONCILER_WORK          scratch folder outside the checkout
#   RECONCILER_ARTIFACTS     folder kept as the job's artifacts: audit log, applied plan
#   RECONCILER_SECRET_DIR    folder outside the checkout for credentials.csv (never printed;
#                            ci/handoff.sh passes it to the admin's secure channel, then removes it)
#   RECONCILER_CREDENTIALS_HANDOFF  the handoff command; without it a plan that issues passwords
#                            is refused (they would be lost with the runner)
#   RECONCILER_AUDIT_LOG     the local audit log (default: the artifacts folder's audit.jsonl); the
#                            history the report reads is kept in the directory itself
#   DISPATCH_DIGEST, DISPATCH_NOW  a run started by hand: without a digest, plan and say how to
#                            apply; with one, apply only the plan of that digest (at that clock)
#
# How a merge is checked. The pull request's job recorded, in the hidden marker of its comment,
# the digest of the operations the pull request causes: those of its plan that the plan of its
# merge base does not hold (the same directory, the same clock). Here, at the clock of the run:
#   1. the merged inventory (MERGED_SHA) is planned;
#   2. so is the main branch just before the merge (its first parent): the directory should
#      already be what it says, so its plan should be empty ("nothing else changed"). When it is
#      not because an earlier merge was not applied yet (its job was cancelled or failed), that
#      merge is checked the same way, back to a commit whose plan is empty;
#   3. each merge's operations (its plan less the plan before it) must be those its reviewers saw.
# Then the plan of step 1 is applied with --expect-digest. Two pull requests merged one after the
# other are both applied without anyone's help (the second's operations do not depend on the
# first's, or they would differ from what was reviewed). Anything else (a change made by hand, a
# time rule due, a push without review, operations that differ) stops the job: nothing is
# applied, the new plan is posted on the pull request and in the job summary, and a run of the
# workflow by hand plans and then applies it by its digest.
set -euo pipefail
src=${RECONCILER_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=ci/lib.sh
. "$src/ci/lib.sh"
apply_job
#: how many merges not yet applied one run may catch up with
max_depth=${RECONCILER_MAX_PENDING_MERGES:-5}
trap remove_trees EXIT
pull=""
stop() {
  if [ "${GITHUB_ACTIONS:-}" = true ]; then echo "::error::$1"; fi
  printf 'Error: %s\n' "$1" >&2
  {
    printf '### Not applied\n\n%s\n' "$1"
    if [ -s "$work/plan.md" ]; then
      printf '\nThe plan of the merged inventory now (digest `%s`, clock `%s`):\n\n' "${new:-}" "${now:-}"
      cat "$work/plan.md"
      printf '\nTo apply exactly this plan once it is reviewed, run the workflow by hand with digest `%s` and now `%s`.\n' "${new:-}" "${now:-}"
    fi
  } >"$work/stopped.md"
  summary <"$work/stopped.md"
  if [ -n "$pull" ]; then
    "$python" "$src/ci/plan_comment.py" notify --pull "$pull" --markdown "$work/stopped.md" ||
      echo "(could not comment on pull request $pull)" >&2
  fi
  exit 1
}
apply_plan() {  # PLAN DIGEST SOURCE
  local issues
  issues=$("$python" -c 'import json,sys; print(sum(o["action"] in ("create","restore") for o in json.load(open(sys.argv[1]))["operations"]))' "$1")
  if [ "$issues" -gt 0 ] && [ -z "${RECONCILER_CREDENTIALS_HANDOFF:-}" ]; then
    stop "the plan issues $issues passwords but RECONCILER_CREDENTIALS_HANDOFF (the command that hands credentials.csv to your secure channel) is not configured: they would be lost with the runner. Nothing was applied."
  fi
  reconciler apply "$1" --expect-digest "$2" --inventory "$inventory" \
    --credentials-out "$secret/credentials.csv" \
    --actor "${RECONCILER_ACTOR:-${GITHUB_ACTOR:-${GITLAB_USER_LOGIN:-ci}}} via $3"
}

head=$(git rev-parse HEAD)
if [ -n "${DISPATCH_DIGEST:-}" ] || [ "${GITHUB_EVENT_NAME:-}" = workflow_dispatch ] || [ "${CI_PIPELINE_SOURCE:-}" = web ]; then
  # run by hand: plan the main branch; with a digest (and its clock), apply exactly that plan
  digest=${DISPATCH_DIGEST:-}
  now=${DISPATCH_NOW:-}
  args=(--out "$artifacts/plan.json" --format markdown "${extra[@]}")
  if [ -n "$now" ]; then args+=(--now "$now"); fi
  reconciler plan "$inventory" "${args[@]}" >"$work/plan.md"
  new=$(field "$artifacts/plan.json" digest)
  now=$(field "$artifacts/plan.json" now)
  if [ -z "$digest" ]; then
    cat "$work/plan.md"
    {
      cat "$work/plan.md"
      printf '\nTo apply exactly this plan, run the workflow again with digest `%s` and now `%s`.\n' "$new" "$now"
    } | summary
    echo "To apply exactly this plan, run again with digest=$new now=$now"
    exit 0
  fi
  if [ "$new" != "$digest" ]; then
    cat "$work/plan.md"
    stop "the plan made now ($new) is not the plan of digest $digest: the directory or the inventory changed since. Nothing was applied. Run the workflow by hand again without a digest, review the new plan, and apply it by its digest."
  fi
  summary <"$work/plan.md"
  apply_plan "$artifacts/plan.json" "$digest" "the run started by hand"
  exit 0
fi

# reviewed COMMIT OUT: the reviewed plan's marker of the pull request merged as COMMIT; status 3
# when no pull request was merged as it, 4 when the pull request has no plan comment
reviewed() {
  local status=0
  "$python" "$src/ci/plan_comment.py" reviewed --commit "$1" --out "$2" 2>"$work/reviewed.err" ||
    status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 3 ] && [ "$status" -ne 4 ]; then
    cat "$work/reviewed.err" >&2
    stop "cannot read the pull request merged as $1 (above). Nothing was applied."
  fi
  return "$status"
}

merged=${MERGED_SHA:-$head}
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
set +e
reconciler plan "$inventory" --now "$now" --out "$artifacts/plan.json" --format markdown \
  "${extra[@]}" >"$work/plan.md" 2>"$work/plan.err"
status=$?
set -e
cat "$work/plan.err" >&2
new=""
if [ -f "$artifacts/plan.json" ] && [ "$status" -eq 0 ]; then new=$(field "$artifacts/plan.json" digest); fi

# The merges not yet applied, newest first: "COMMIT PARENT MARKER" per merge.
steps=()
commit=$merged
depth=0
while :; do
  depth=$((depth + 1))
  marker="$work/reviewed-$depth.json"
  found=0
  reviewed "$commit" "$marker" || found=$?
  if [ "$found" -eq 3 ]; then
    stop "no pull request was merged as $commit: a direct push to the main branch has no reviewed plan. Nothing was applied."
  fi
  pull=$(field "$marker" pull_request 2>/dev/null || true)
  if [ "$found" -eq 4 ]; then
    pull=${pull:-$(sed -n 's/.*pull request \([0-9]*\).*/\1/p' "$work/reviewed.err" | head -1)}
    stop "pull request ${pull:-merged as $commit} has no plan comment with a digest (its plan failed, or it came from a fork and planned against the snapshot). Nothing was applied."
  fi
  if [ "$depth" -eq 1 ]; then first_pull=$pull; fi
  if [ "$status" -ne 0 ]; then
    pull=$first_pull
    stop "the plan of the merged inventory failed (above). Nothing was applied."
  fi
  # the main branch before this pull request: back over the pull request's own commits
  parent=$(git rev-parse "$commit^1")
  while reviewed "$parent" "$work/parent.json" &&
    [ "$(field "$work/parent.json" pull_request)" = "$pull" ]; do
    parent=$(git rev-parse "$parent^1")
  done
  steps+=("$commit $parent $marker")
  if [ "$depth" -eq 1 ]; then first_parent=$parent; fi
  before=0
  plan_tree "$parent" "$now" "$work/plan-$parent.json" 2>"$work/parent.err" || before=$?
  if [ "$before" -eq 3 ] || { [ "$before" -eq 0 ] && [ "$(operations "$work/plan-$parent.json")" -eq 0 ]; }; then
    break  # the directory is what the main branch said before these merges
  fi
  pull=$first_pull
  if [ "$before" -ne 0 ]; then
    cat "$work/parent.err" >&2
    stop "the plan of the main branch before this merge ($parent) failed (above). Nothing was applied."
  fi
  if ! reviewed "$parent" "$work/parent.json"; then
    stop "the directory is not what the main branch said before this merge ($(git rev-parse --short "$parent")): its plan is not empty ($(plural "$(operations "$work/plan-$parent.json")" operation): a change made by hand, a time rule due, or a commit pushed without review). Nothing was applied: the operations of this merge are only applied alone."
  fi
  if [ "$depth" -ge "$max_depth" ]; then
    stop "more than $max_depth merges are not applied yet. Nothing was applied."
  fi
  commit=$parent  # an earlier merge, not applied yet: check it too
done

for step in "${steps[@]}"; do
  read -r commit parent marker <<<"$step"
  pr=$(field "$marker" pull_request)
  pull=$first_pull
  if [ "$commit" = "$merged" ]; then
    planned="$artifacts/plan.json"
  else
    planned="$work/plan-$commit.json"
    plan_tree "$commit" "$now" "$planned"
  fi
  base=()
  if [ -f "$work/plan-$parent.json" ]; then base=(--base "$work/plan-$parent.json"); fi
  "$python" "$src/ci/plan_comment.py" caused --head "$planned" "${base[@]}" --out "$work/caused-$commit.json"
  expected=$(field "$marker" caused)
  if [ -z "$expected" ]; then
    stop "the plan reviewed in pull request $pr does not record the operations it causes (it was made by an older version of this workflow). Nothing was applied."
  fi
  if [ "$(field "$work/caused-$commit.json" digest)" != "$expected" ]; then
    if [ "$commit" = "$merged" ]; then
      stop "the operations that pull request $pr causes now ($(field "$work/caused-$commit.json" count)) are not those its reviewers saw ($(field "$marker" caused_count), digest $expected): the directory or the main branch changed what it does (an entry it changes was changed meanwhile, an address it gives was taken). Nothing was applied."
    fi
    # an earlier merge whose operations are not what was reviewed either: most likely it was
    # applied, and the directory differs from the main branch for another reason
    stop "the directory is not what the main branch said before this merge ($(git rev-parse --short "$first_parent")): its plan is not empty ($(plural "$(operations "$work/plan-$first_parent.json")" operation): a change made by hand, a time rule due, or a commit not applied). Nothing was applied: the operations of this merge are only applied alone."
  fi
done
pull=$first_pull
summary <"$work/plan.md"
cat "$work/plan.md"
apply_plan "$artifacts/plan.json" "$new" "pull request $first_pull"
