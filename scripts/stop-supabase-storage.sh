#!/usr/bin/env bash
# Stop what scripts/start-supabase-storage.sh started, by its PID files only.
# Usage: stop-supabase-storage.sh [--purge]  (--purge also drops its database, data and secrets)
set -uo pipefail
WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/filetier-supabase}
RUN_DIR=$WORK_DIR/run
DB_NAME=${DB_NAME:-filetier_supabase}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
log() { printf '[stop-supabase-storage] %s\n' "$*" >&2; }

stop_pid() {  # name pidfile
  local name=$1 f=$2 pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    log "$name ($pid) stopped"
  fi
  rm -f "$f"
}
stop_pid gateway "$RUN_DIR/proxy.pid"
stop_pid storage "$RUN_DIR/storage.pid"
rm -f "$RUN_DIR/exports.env"
if [[ ${1:-} == --purge ]]; then
  psql -X -q -d postgres -c "drop database if exists \"$DB_NAME\" with (force)" && log "dropped database $DB_NAME"
  rm -rf "$WORK_DIR/data" "$RUN_DIR/secrets.env" && log "removed data and secrets"
fi
exit 0
