#!/usr/bin/env bash
# The daily scheduled job: the time rules act on their day, whether or not anyone plans.
#   1. plan the main branch at the day's clock; the operations only the clock causes (suspensions
#      for inactivity or an unchanged password, deletions after 3 years of suspension) are
#      applied on their own (`plan --only-time-rules`), within the guards (max_deletes, 10 % of
#      the mailboxes suspended): over them, nothing is applied and the summary says so;
#   2. anything else that differs (an inventory change not applied yet, a change made by hand) is
#      reported, never applied here;
#   3. on the report days (RECONCILER_REPORT_DAYS, local dates MM-DD, default "01-01 07-01": the
#      6-month report of QN-2020 Đ13.6) the periodic report is made in HTML, markdown and CSV and
#      kept with the job's artifacts;
#   4. the summary goes to the job summary and, when there is something to say, to the open issue
#      the job keeps (ci/plan_comment.py announce).
# Runs only in the protected job, like the merge job (same variables as ci/merge-apply.sh), and
# never at the same time as it (one concurrency group / resource group).
#   RECONCILER_NOW   the clock (default: now), for replaying a day
set -euo pipefail
src=${RECONCILER_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=ci/lib.sh
. "$src/ci/lib.sh"
apply_job
now=${RECONCILER_NOW:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
day=$(TZ=Asia/Ho_Chi_Minh date -d "$now" +%Y-%m-%d)
status=0
out="$work/summary.md"
printf '### Reconciler: daily run of %s\n\n' "$day" >"$out"
say=false  # something worth an issue comment

# 1. what the clock alone causes, applied within the guards
set +e
reconciler plan "$inventory" --now "$now" --only-time-rules --out "$artifacts/time-rules.json" \
  --format markdown "${extra[@]}" >"$work/time-rules.md" 2>"$work/time-rules.err"
planned=$?
set -e
cat "$work/time-rules.err" >&2
if [ "$planned" -ne 0 ]; then
  say=true
  status=1
  {
    echo "**The time rules were not applied**: their plan was refused or failed:"
    echo
    echo '```'
    cat "$work/time-rules.err"
    echo '```'
    echo
    cat "$work/time-rules.md"
  } >>"$out"
  rm -f "$artifacts/time-rules.json"
elif [ "$(operations "$artifacts/time-rules.json")" -gt 0 ]; then
  say=true
  digest=$(field "$artifacts/time-rules.json" digest)
  set +e
  reconciler apply "$artifacts/time-rules.json" --expect-digest "$digest" --inventory "$inventory" \
    --actor "${RECONCILER_ACTOR:-scheduled run} (time rules)" >"$work/applied.txt" 2>"$work/applied.err"
  applied=$?
  set -e
  cat "$work/applied.txt" "$work/applied.err" >&2
  if [ "$applied" -eq 0 ]; then
    printf '**Applied %s of the time rules** (digest `%s`):\n\n' \
      "$(plural "$(operations "$artifacts/time-rules.json")" operation)" "$digest" >>"$out"
  else
    status=1
    printf '**Applying the time rules failed** (digest `%s`); what was done is in the audit log:\n\n```\n%s\n```\n\n' \
      "$digest" "$(cat "$work/applied.err")" >>"$out"
  fi
  cat "$work/time-rules.md" >>"$out"
else
  echo "No time rule is due today." >>"$out"
fi

# 2. everything else that differs: reported, not applied
set +e
reconciler plan "$inventory" --now "$now" --out "$work/rest.json" --format markdown \
  "${extra[@]}" --allow-deletes 1000000000 --allow-suspends 1000000000 >"$work/rest.md" 2>"$work/rest.err"
rest=$?
set -e
if [ "$rest" -ne 0 ]; then
  say=true
  status=1
  printf '\n**The plan of the main branch failed:**\n\n```\n%s\n```\n' "$(cat "$work/rest.err")" >>"$out"
elif [ "$(operations "$work/rest.json")" -gt 0 ]; then
  say=true
  printf '\n**Not applied: %s of the plan of the main branch, besides the time rules** (an inventory change not applied yet, or a change made by hand in the directory). Review them and apply them through a pull request, or by running the workflow by hand:\n\n' \
    "$(plural "$(operations "$work/rest.json")" operation)" >>"$out"
  cat "$work/rest.md" >>"$out"
else
  printf '\nThe directory matches the main branch.\n' >>"$out"
fi

# 3. the periodic report, on its days, kept with the artifacts
report_days=${RECONCILER_REPORT_DAYS:-01-01 07-01}
if [[ " $report_days " == *" ${day:5} "* ]]; then
  say=true
  made=()
  for format in html markdown csv; do
    ext=$format
    if [ "$format" = markdown ]; then ext=md; fi
    target="$artifacts/report-$day.$ext"
    if reconciler report "$inventory" --now "$now" --format "$format" --out "$target"; then
      made+=("$(basename "$target")")
    else
      status=1
    fi
  done
  printf '\n**The periodic report of %s** is kept with this run'"'"'s artifacts: %s.\n' \
    "$day" "${made[*]:-none (it failed, see the log)}" >>"$out"
fi

cat "$out"
summary <"$out"
if [ "$say" = true ]; then
  "$python" "$src/ci/plan_comment.py" announce --title "Reconciler: daily runs" --markdown "$out" ||
    echo "(could not post the summary to the issue)" >&2
fi
exit "$status"
