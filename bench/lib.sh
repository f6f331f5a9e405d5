# Shared by the benchmarks: a source and a target MariaDB with identical settings, dm, and
# small helpers. Source it after setting WORK.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dm-target}"
# DM_BIN times another dm binary (an older build, to compare) instead of building this one.
if [ -n "${DM_BIN:-}" ]; then
  DM="$DM_BIN"
  command -v sysbench >/dev/null || scripts/setup.sh --bench >/dev/null
else
  scripts/setup.sh --bench >/dev/null
  DM="$CARGO_TARGET_DIR/release/dm"
fi
SRC_PORT=23306 DST_PORT=23307 API=127.0.0.1:28261
# No buffer pool dump/load: a restarted server would reload the previous contender's pages
# while the next one runs.
export MARIADB_OPTS="--innodb-buffer-pool-size=512M --innodb-log-file-size=256M --max-connections=300 --innodb-buffer-pool-dump-at-shutdown=OFF --innodb-buffer-pool-load-at-startup=OFF"
# Every contender writes the target's binlog (a target with replicas needs the rows in it; dm,
# LOAD DATA and mariadb do so always), myloader only with -e: the same work for all.
# MYLOADER_ARGS="" times myloader's default instead (no binlog: ~8% faster on 2 cores).
MYLOADER_ARGS=${MYLOADER_ARGS--e}

cleanup() {
  if [ -n "${DM_PID:-}" ]; then kill -9 "$DM_PID" 2>/dev/null; wait "$DM_PID" 2>/dev/null; fi || true
  scripts/mariadb.sh stop "$WORK/target" || true
  scripts/mariadb.sh stop "$WORK/source" || true
  # The servers' data of a benchmark is gigabytes: gone with it, unless kept for REUSE.
  if [ "${REUSE:-0}" != 1 ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
src() { mariadb -h127.0.0.1 -P$SRC_PORT -uroot -N "$@"; }
dst() { mariadb -h127.0.0.1 -P$DST_PORT -uroot -N "$@"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
# The $2-th number of the list $1.
nth() { echo "$1" | awk -v i="$2" '{print $i}'; }
# min/median/max of the numbers given.
spread() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.2f/%.2f/%.2f", a[1], a[int((NR+1)/2)], a[NR]}'; }

# Starts `dm standalone` in $WORK/dm with source s1 (the source server) created.
start_dm() {
  mkdir -p "$WORK/dm"
  printf 'data-dir: %s\nmaster-addr: %s\nlog-level: info\n' "$WORK/dm/data" "$API" > "$WORK/dm/dm.yaml"
  printf 'source-id: s1\nenable-gtid: true\nfrom:\n  host: 127.0.0.1\n  port: %s\n  user: root\n  password: ""\n%s' \
    $SRC_PORT "${SOURCE_EXTRA:-}" > "$WORK/dm/source.yaml"
  "$DM" standalone -c "$WORK/dm/dm.yaml" > "$WORK/dm/dm.log" 2>&1 &
  DM_PID=$!
  for _ in $(seq 1 50); do "$DM" ctl --master-addr $API query-status >/dev/null 2>&1 && break; sleep 0.1; done
  "$DM" ctl --master-addr $API operate-source create "$WORK/dm/source.yaml" >/dev/null
}

# The start of a task file: name $1, task-mode $2, the target server as target-database.
task_head() {
  printf 'name: %s\ntask-mode: %s\ntarget-database:\n  host: 127.0.0.1\n  port: %s\n  user: root\n  password: ""\n' \
    "$1" "$2" $DST_PORT
}

# The rest of a task file for source s1: do-dbs $1, then the head of mydumpers entry `m`
# (its fields follow).
task_body() {
  cat <<YAML
mysql-instances:
  - source-id: s1
    block-allow-list: sel
    mydumper-config-name: m
block-allow-list:
  sel:
    do-dbs: [$1]
mydumpers:
  m:
YAML
}

# Waits until field $2 of the first subtask of task $1 is $3 (its first word); fails if the
# subtask pauses. One process polls the API every 50 ms: spawning `dm ctl` and a JSON parser
# per poll took a noticeable share of the 2 cores from the contender being timed.
wait_task() {
  python3 - "$API" "$1" "$2" "$3" <<'PY'
import json, sys, time, urllib.request
api, task, field, want = sys.argv[1:]
while True:
    try:
        with urllib.request.urlopen(f"http://{api}/api/v1/tasks/{task}", timeout=5) as r:
            s = (json.load(r).get("subtasks") or [{}])[0]
    except Exception:
        s = {}
    if s.get("stage") == "paused":
        print("PAUSED", s.get("last_error"))
        sys.exit(1)
    if str(s.get(field) or "").split(" ")[0] == want:
        sys.exit(0)
    time.sleep(0.05)
PY
}

# Peak RSS (MiB) and CPU seconds of dm so far.
dm_usage() {
  echo "$(( $(awk '/VmHWM/ {print $2}' "/proc/$DM_PID/status") / 1024 ))" \
    "$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$DM_PID/stat")"
}

# CPU seconds the hypervisor gave other guests instead of this machine so far (all cores):
# a run that lost much of it is slower for reasons outside the contenders.
steal() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", $9 / hz}' /proc/stat
}

# CPU seconds of this shell's children that ended so far (the tools a benchmark ran).
children_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($16 + $17) / hz}' "/proc/$$/stat"
}

# CPU seconds a server has used so far ($1: its dir).
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$(cat "$1/mysqld.pid")/stat"
}
