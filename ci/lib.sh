# What the CI scripts share (sourced, not run, after `set -euo pipefail` and `src`, the folder of
# the reconciler's sources): the job's variables and a few functions.
#   INVENTORY            the inventory folder in the checkout (default .)
#   RECONCILER_WORK      a scratch folder outside the checkout
#   RECONCILER_PYTHON    the Python that runs ci/plan_comment.py (default python3)
#   RECONCILER_PLAN_ARGS extra plan options for every plan, e.g. "--allow-suspends 3" for a small
#                        province whose one suspension is over 10 % (the same in every job, or the
#                        plans differ)
inventory=${INVENTORY:-.}
inventory=${inventory#./}
work=${RECONCILER_WORK:-$(mktemp -d)}
python=${RECONCILER_PYTHON:-python3}
mkdir -p "$work"
read -r -a extra <<<"${RECONCILER_PLAN_ARGS:-}"

# The folders of a job that applies: RECONCILER_ARTIFACTS (kept as the job's artifacts: audit
# log, applied plan, reports), RECONCILER_SECRET_DIR (credentials.csv, never printed; handed over
# by ci/handoff.sh, then removed); the local audit log goes with the artifacts unless
# RECONCILER_AUDIT_LOG says otherwise (the history the report reads is kept in the directory).
apply_job() {
  artifacts=${RECONCILER_ARTIFACTS:-$work/artifacts}
  secret=${RECONCILER_SECRET_DIR:-$work/secret}
  mkdir -p "$artifacts"
  mkdir -p -m 700 "$secret"
  export RECONCILER_AUDIT_LOG=${RECONCILER_AUDIT_LOG:-$artifacts/audit.jsonl}
}

field() { "$python" "$src/ci/plan_comment.py" field "$@"; }

# Append standard input to the job summary (GitHub), or drop it.
summary() { if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat >>"$GITHUB_STEP_SUMMARY"; else cat >/dev/null; fi; }

# The number of operations of a plan file.
operations() { "$python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["operations"]))' "$1"; }

# plural N NOUN: "1 operation", "2 operations".
plural() { if [ "$1" = 1 ]; then echo "1 $2"; else echo "$1 ${2}s"; fi; }

_trees=()
# Remove the work trees plan_tree made (called on exit).
remove_trees() {
  local tree
  for tree in "${_trees[@]}"; do git worktree remove --force "$tree" >/dev/null 2>&1 || true; done
}

# plan_tree COMMIT NOW OUT: plan the inventory as it is at COMMIT against the directory, at the
# clock NOW, into the plan file OUT. Only to compare plans, never to apply: no guard on deletions
# and suspensions. Status 3 when COMMIT has no inventory; the plan's own status otherwise.
plan_tree() {
  local commit=$1 now=$2 out=$3
  local tree="$work/tree-${commit:0:12}"
  if [ ! -d "$tree" ]; then
    git worktree add --quiet --detach "$tree" "$commit"
    _trees+=("$tree")
  fi
  if [ ! -f "$tree/$inventory/directory.yaml" ]; then return 3; fi
  reconciler plan "$tree/$inventory" --now "$now" --out "$out" --format json "${extra[@]}" \
    --allow-deletes 1000000000 --allow-suspends 1000000000 >/dev/null
}
