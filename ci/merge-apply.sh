#!/usr/bin/env bash
# The merge job: plan the merged inventory again, check that it is the plan reviewers saw, apply it.
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
#   RECONCILER_MAX_PLAN_AGE_DAYS   refuse a reviewed plan older than this (default 7)
#   DISPATCH_DIGEST, DISPATCH_NOW  a run started by hand: without a digest, plan and say how to
#                            apply; with one, apply only the plan of that digest (at that clock)
#
# How the reviewed plan is found: the pull request's job saved the plan's digest, clock (`now`),
# commit and directory in the hidden marker of its comment. Here the pull request merged as
# MERGED_SHA is looked up, the merged inventory must be the same tree as the reviewed commit's,
# and the plan is made again from the reviewed commit at the reviewed clock: the same inventory,
# clock and directory give the same digest. When the directory changed in between (someone else's
# apply, a hand edit, a login that moved a time rule), the digest differs and nothing is applied.
set -euo pipefail
inventory=${INVENTORY:-.}
inventory=${inventory#./}
work=${RECONCILER_WORK:-$(mktemp -d)}
artifacts=${RECONCILER_ARTIFACTS:-$work/artifacts}
secret=${RECONCILER_SECRET_DIR:-$work/secret}
src=${RECONCILER_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
python=${RECONCILER_PYTHON:-python3}
max_age=${RECONCILER_MAX_PLAN_AGE_DAYS:-7}
mkdir -p "$work" "$artifacts"
mkdir -p -m 700 "$secret"
field() { "$python" "$src/ci/plan_comment.py" field "$@"; }
tree() { if [ "$inventory" = "." ]; then git rev-parse "$1^{tree}"; else git rev-parse "$1:$inventory"; fi; }
summary() { if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat >>"$GITHUB_STEP_SUMMARY"; else cat >/dev/null; fi; }
stop() {
  if [ "${GITHUB_ACTIONS:-}" = true ]; then echo "::error::$1"; fi
  printf 'Error: %s\n' "$1" >&2
  printf '### Not applied\n\n%s\n' "$1" | summary
  exit 1
}

head=$(git rev-parse HEAD)
if [ -n "${DISPATCH_DIGEST:-}" ] || [ "${GITHUB_EVENT_NAME:-}" = workflow_dispatch ] || [ "${CI_PIPELINE_SOURCE:-}" = web ]; then
  digest=${DISPATCH_DIGEST:-}
  now=${DISPATCH_NOW:-}
  commit=$head
  source="the run started by hand"
else
  merged=${MERGED_SHA:-$head}
  "$python" "$src/ci/plan_comment.py" reviewed --commit "$merged" --out "$work/reviewed.json" ||
    stop "no reviewed plan for $merged (see above). Nothing was applied."
  digest=$(field "$work/reviewed.json" digest)
  now=$(field "$work/reviewed.json" now)
  commit=$(field "$work/reviewed.json" commit)
  reviewed_directory=$(field "$work/reviewed.json" directory)
  source="pull request $(field "$work/reviewed.json" pull_request)"
  if [ "$reviewed_directory" != "$RECONCILER_DIRECTORY" ]; then
    stop "$source was planned against $reviewed_directory, not $RECONCILER_DIRECTORY (a fork's pull request plans against the snapshot): its plan of the live directory was never reviewed. Nothing was applied. Run this workflow by hand to plan, review the plan, and run it again with its digest and clock to apply."
  fi
  if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    git fetch --quiet --no-tags origin "$commit" || stop "cannot fetch the reviewed commit $commit"
  fi
  if [ "$(tree "$commit")" != "$(tree "$head")" ]; then
    stop "the inventory merged into the main branch is not the one whose plan was reviewed in $source (the main branch changed it in between). Nothing was applied. Re-run the pull request's plan on the merged inventory: run this workflow by hand, review its plan, and run it again with that digest."
  fi
  age=$("$python" -c 'import datetime as d,sys; t=d.datetime.fromisoformat(sys.argv[1].replace("Z","+00:00")); print((d.datetime.now(d.UTC)-t).days)' "$now")
  if [ "$age" -gt "$max_age" ]; then
    stop "the plan reviewed in $source was made $age days ago (at $now), more than $max_age: its time rules are out of date. Nothing was applied. Re-run the plan (push to the pull request, or run this workflow by hand)."
  fi
fi

# Plan from the reviewed commit (its tree is the merged one), so the plan records that commit.
checkout=.
if [ "$commit" != "$head" ]; then
  checkout="$work/reviewed"
  rm -rf "$checkout"
  git worktree add --quiet --detach "$checkout" "$commit"
fi
args=(--out "$artifacts/plan.json" --format markdown)
# RECONCILER_PLAN_ARGS: extra plan options for every plan, e.g. "--allow-suspends 3" for a small
# province whose one suspension is over 10 % (the same in the pull request and merge jobs, or the
# digests differ)
read -r -a extra <<<"${RECONCILER_PLAN_ARGS:-}"
args+=("${extra[@]}")
if [ -n "$now" ]; then args+=(--now "$now"); fi
reconciler plan "$checkout/$inventory" "${args[@]}" >"$work/plan.md"
new=$(field "$artifacts/plan.json" digest)
if [ -z "$digest" ]; then
  now=$(field "$artifacts/plan.json" now)
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
  stop "the plan made now ($new) is not the plan reviewed in $source ($digest): the directory changed since the review (another apply, a change by hand, a login), or the inventory did. Nothing was applied. Re-run the plan and review it again: push to the pull request or run this workflow by hand; the plan above is what it would do now."
fi
cat "$work/plan.md" | summary

issues=$("$python" -c 'import json,sys; print(sum(o["action"] in ("create","restore") for o in json.load(open(sys.argv[1]))["operations"]))' "$artifacts/plan.json")
if [ "$issues" -gt 0 ] && [ -z "${RECONCILER_CREDENTIALS_HANDOFF:-}" ]; then
  stop "the plan issues $issues passwords but RECONCILER_CREDENTIALS_HANDOFF (the command that hands credentials.csv to your secure channel) is not configured: they would be lost with the runner. Nothing was applied."
fi
reconciler apply "$artifacts/plan.json" --expect-digest "$digest" \
  --credentials-out "$secret/credentials.csv" --audit-log "$artifacts/audit.jsonl" \
  --actor "${RECONCILER_ACTOR:-${GITHUB_ACTOR:-${GITLAB_USER_LOGIN:-ci}}} via $source"
