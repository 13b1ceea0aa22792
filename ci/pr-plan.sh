#!/usr/bin/env bash
# The pull-request job: plan the inventory and post the plan as the pull request's one comment
# (a re-push updates the same comment). Called by .github/workflows/reconciler.yml and
# ci/gitlab-ci.yml with:
#   INVENTORY              the inventory folder in the checkout (default .)
#   RECONCILER_DIRECTORY   the live directory, or ldif:snapshot/directory.ldif for a fork
#   BASE_REF               the pull request's base (for --base-ref); empty to leave it out
#   RECONCILER_WORK        a scratch folder outside the checkout
#   RECONCILER_SRC         where this script's folder lives (for plan_comment.py)
#   RECONCILER_READ_FROM   optional: a replica (consumer) that pull requests' plans read, so that
#                          reviews never load the providers (README: A replicated directory);
#                          waited for up to RECONCILER_WAIT_REPLICATION seconds (default 60)
# The digest, clock and commit of the plan go into the comment's hidden marker, with the digest
# of the operations this pull request itself causes: those of its plan that the plan of its
# merge base (the same directory, the same clock) does not hold. The merge job applies when what
# the merge causes is exactly that (ci/merge-apply.sh).
set -euo pipefail
src=${RECONCILER_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=ci/lib.sh
. "$src/ci/lib.sh"
trap remove_trees EXIT
if [ -n "${RECONCILER_READ_FROM:-}" ] && [[ "${RECONCILER_DIRECTORY:-}" != ldif:* ]]; then
  # the plan of the merge base reads the same replica (plan_tree), so that both see one state
  extra+=(--read-from "$RECONCILER_READ_FROM" --wait-replication "${RECONCILER_WAIT_REPLICATION:-60}")
fi
args=("${extra[@]}")
base=""
if [ -n "${BASE_REF:-}" ]; then
  # what the pull request changed: from the merge base, not from the base branch's tip
  base=$(git merge-base "$BASE_REF" HEAD 2>/dev/null || echo "$BASE_REF")
  args+=(--base-ref "$base")
fi

set +e
reconciler plan "$inventory" --out "$work/plan.json" --format markdown "${args[@]}" \
  >"$work/plan.md" 2>"$work/plan.err"
status=$?
set -e
cat "$work/plan.err" >&2
if [ "$status" -ne 0 ]; then
  {
    echo "### Directory plan: the plan failed"
    echo
    echo "Nothing can be applied from this pull request until the plan succeeds:"
    echo
    echo '```'
    cat "$work/plan.err"
    echo '```'
  } >"$work/failed.md"
  "$python" "$src/ci/plan_comment.py" post --markdown "$work/failed.md" || true
  exit "$status"
fi

# What this pull request causes: its plan less the plan of its merge base, at the same clock.
caused=(--out "$work/caused.json")
now=$(field "$work/plan.json" now)
if [ -n "$base" ]; then
  set +e
  plan_tree "$base" "$now" "$work/base.json" 2>"$work/base.err"
  status=$?
  set -e
  if [ "$status" -eq 0 ]; then
    caused+=(--base "$work/base.json")
  elif [ "$status" -ne 3 ]; then  # 3: no inventory at the base, so the pull request causes all
    cat "$work/base.err" >&2
    echo "Error: the plan of the merge base $base failed (above): what this pull request causes cannot be told apart" >&2
    exit "$status"
  fi
fi
"$python" "$src/ci/plan_comment.py" caused --head "$work/plan.json" "${caused[@]}"
mine=$(field "$work/caused.json" count)
total=$(field "$work/caused.json" total)
if [ "$mine" != "$total" ]; then
  printf '\n> **%s of these %s operations come from this pull request.** The other %s were pending before it (time rules due, changes made by hand or not applied yet): the daily run applies the time rules; this pull request is applied on merge only once the directory holds everything else.\n' \
    "$mine" "$total" "$((total - mine))" >>"$work/plan.md"
fi
case "${RECONCILER_DIRECTORY:-}" in
  ldif:*)
    printf '\n> Planned against the LDIF file `%s`, not the live directory (a pull request from a fork sees no credentials): a maintainer plans it against the live directory before it is applied.\n' \
      "${RECONCILER_DIRECTORY#ldif:}" >>"$work/plan.md"
    ;;
esac
cat "$work/plan.md"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$work/plan.md" >>"$GITHUB_STEP_SUMMARY"; fi
"$python" "$src/ci/plan_comment.py" post --markdown "$work/plan.md" --plan "$work/plan.json" \
  --caused "$work/caused.json"
