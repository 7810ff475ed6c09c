#!/usr/bin/env bash
# Nightly stylize on one machine (Beam's local runner): the day's inbox folder
# $INBOX/<YYYY-MM-DD>/ into one $OUT for all nights, with the registry's latest model.
# Images an earlier night already stylized with the same model are `skipped`, so each
# night does only new ones. A lock keeps two nights from overlapping; each run logs to
# $LOG_DIR/nightly-<date>-<time>.log. Run from cron (deploy/nightly/crontab).
#
# Settings (environment): REGISTRY, NAME, MODEL (default $REGISTRY/$NAME/latest), INBOX,
# OUT, DATE (YYYY-MM-DD, today or yesterday; default yesterday, UTC), LOG_DIR, LOCK_FILE,
# SCENEGAN (the scenegan command), STYLIZE_ARGS (more flags, split on spaces).
# DRY_RUN=1 prints the command instead of running it.
# Exit status: the stylize command's; 75 when another night still holds the lock.
set -euo pipefail

: "${REGISTRY:=/srv/scenegan/registry}"
: "${NAME:=painting}"
: "${MODEL:=${REGISTRY}/${NAME}/latest}"
: "${INBOX:=/srv/scenegan/inbox}"
: "${OUT:=/srv/scenegan/stylized/${NAME}}"
: "${DATE:=yesterday}"
: "${LOG_DIR:=/srv/scenegan/logs}"
: "${LOCK_FILE:=${LOG_DIR}/nightly-${NAME}.lock}"
: "${SCENEGAN:=scenegan}"
: "${STYLIZE_ARGS:=}"

day=$(date -u -d "$DATE" +%F) || { echo "run_local.sh: bad DATE '$DATE'" >&2; exit 2; }
read -r -a extra <<<"$STYLIZE_ARGS"
command=("$SCENEGAN" stylize --model "$MODEL" --input "${INBOX}/{date}" --output "$OUT"
    --date "$day" "${extra[@]}")
if [[ "${DRY_RUN:-0}" == 1 ]]; then
    printf -v quoted '%q ' "${command[@]}"
    echo "${quoted% }"
    exit 0
fi

mkdir -p "$LOG_DIR"
exec 9>>"$LOCK_FILE"
if ! flock --nonblock 9; then
    echo "run_local.sh: another nightly run holds $LOCK_FILE; not starting $day" >&2
    exit 75
fi
log="${LOG_DIR}/nightly-${day}-$(date -u +%Y%m%dT%H%M%SZ).log"
if [[ "$INBOX" != *://* && ! -d "${INBOX}/${day}" ]]; then
    echo "$(date -u +%FT%TZ) no folder ${INBOX}/${day}: nothing to stylize" | tee -a "$log"
    exit 0
fi
echo "$(date -u +%FT%TZ) ${command[*]}" >>"$log"
status=0
"${command[@]}" >>"$log" 2>&1 || status=$?
echo "$(date -u +%FT%TZ) finished with status $status" >>"$log"
[[ $status == 0 ]] || echo "run_local.sh: stylize failed ($status); see $log" >&2
exit "$status"
