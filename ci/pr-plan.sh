#!/usr/bin/env bash
# The pull-request job: plan the inventory and post the plan as the pull request's one comment
# (a re-push updates the same comment). Called by .github/workflows/reconciler.yml and
# ci/gitlab-ci.yml with:
#   INVENTORY              the inventory folder in the checkout (default .)
#   RECONCILER_DIRECTORY   the live directory, or ldif:snapshot/directory.ldif for a fork
#   BASE_REF               the pull request's base (for --base-ref); empty to leave it out
#   RECONCILER_WORK        a scratch folder outside the checkout
#   RECONCILER_SRC         where this script's folder lives (for plan_comment.py)
# The digest, clock and commit of the plan go into the comment's hidden marker, where the merge
# job finds them (ci/merge-apply.sh).
set -euo pipefail
inventory=${INVENTORY:-.}
work=${RECONCILER_WORK:-$(mktemp -d)}
src=${RECONCILER_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
python=${RECONCILER_PYTHON:-python3}
mkdir -p "$work"
args=()
# RECONCILER_PLAN_ARGS: extra plan options for every plan, e.g. "--allow-suspends 3" for a small
# province whose one suspension is over 10 % (the same in the pull request and merge jobs, or the
# digests differ)
read -r -a extra <<<"${RECONCILER_PLAN_ARGS:-}"
args+=("${extra[@]}")
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
case "${RECONCILER_DIRECTORY:-}" in
  ldif:*)
    printf '\n> Planned against the LDIF file `%s`, not the live directory (a pull request from a fork sees no credentials): a maintainer plans it against the live directory before it is applied.\n' \
      "${RECONCILER_DIRECTORY#ldif:}" >>"$work/plan.md"
    ;;
esac
cat "$work/plan.md"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$work/plan.md" >>"$GITHUB_STEP_SUMMARY"; fi
"$python" "$src/ci/plan_comment.py" post --markdown "$work/plan.md" --plan "$work/plan.json"
