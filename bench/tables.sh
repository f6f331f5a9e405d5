#!/usr/bin/env bash
# Many tables: SMALL tables of 100 rows (database `many`) plus LARGE sysbench tables of
# LARGE_SIZE rows (database `sbtest`), migrated by one task (task-mode all) against
# mydumper + myloader on the same data. Reports:
# - the time from start-task until dm copied its first table (goal: < 30 s);
# - the full phase's time against mydumper + myloader's (goal: < 1.5x);
# - then, in the incremental phase, a writer touching random small tables with one ALTER TABLE
#   in the middle: how long a row written right after the ALTER takes to reach the target, and
#   how long dm takes to catch up with the whole load;
# - dm's peak RSS (goal: < 300 MiB).
# Every table ends checksum-equal. Prints min/median/max over RUNS runs.
#
#   bench/tables.sh    (SMALL, LARGE, LARGE_SIZE, THREADS, WRITES, RUNS tune it)
SMALL=${SMALL:-10000} LARGE=${LARGE:-4} LARGE_SIZE=${LARGE_SIZE:-250000} THREADS=${THREADS:-4}
WRITES=${WRITES:-20000} RUNS=${RUNS:-3}
WORK="${BENCH_DIR:-/tmp/dm-bench-tables}"
source "$(dirname "$0")/lib.sh"
small() { printf 'many.t%05d' "$1"; }
# Checksums of every table, 500 at a time ($1: src or dst).
checksums() {
  { seq -f "sbtest.sbtest%g" 1 "$LARGE"; for i in $(seq 1 "$SMALL"); do small "$i"; echo; done; } |
    xargs -n 500 | while read -r list; do $1 -e "CHECKSUM TABLE ${list// /,}"; done | awk '{print $2}' | md5sum
}
pos() { src -e "SHOW MASTER STATUS" | awk '{print $1":"$2}'; }
empty_target() {
  dst -e "DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS many; DROP DATABASE IF EXISTS dm_meta"
  scripts/mariadb.sh stop "$WORK/target"
  scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
}
# Field $2 of task $1's first subtask, read once.
field() {
  python3 - "$API" "$1" "$2" <<'PY'
import json, sys, urllib.request
api, task, field = sys.argv[1:]
with urllib.request.urlopen(f"http://{api}/api/v1/tasks/{task}", timeout=30) as r:
    print((json.load(r).get("subtasks") or [{}])[0].get(field))
PY
}

rm -rf "$WORK"; mkdir -p "$WORK"
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
echo "== preparing: $SMALL tables of 100 rows, $LARGE x $LARGE_SIZE sysbench rows"
t0=$(now)
src -e "CREATE DATABASE many; CREATE DATABASE sbtest"
{ echo "USE many;"; for i in $(seq 1 "$SMALL"); do
  t=$(small "$i")
  echo "CREATE TABLE $t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(64) NOT NULL, KEY (k));"
  echo "INSERT INTO $t SELECT seq, seq % 17, MD5(seq) FROM seq_1_to_100;"
done; } | src
sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=$SRC_PORT \
  --mysql-user=root --mysql-db=sbtest --tables="$LARGE" --table-size="$LARGE_SIZE" prepare >/dev/null
echo "   $(calc "$(now) - $t0") s"
WANT=$(checksums src)

gen_writes() { # $1: how many
  awk -v n="$1" -v small="$SMALL" 'BEGIN { srand(7); for (i = 0; i < n; i++)
    printf "UPDATE many.t%05d SET k = k + 1 WHERE id = %d;\n", 1 + int(rand() * small), 1 + int(rand() * 100) }'
}
gen_writes "$WRITES" > "$WORK/writes.sql"
declare -a MYD FULLS FIRSTS RATIOS DDLS RSSS
for run in $(seq 1 "$RUNS"); do
echo "== run $run: mydumper -t $THREADS, then myloader -t $THREADS $MYLOADER_ARGS"
empty_target
t0=$(now)
mydumper -h 127.0.0.1 -P $SRC_PORT -u root -t "$THREADS" -B many -o "$WORK/dump-many" >/dev/null 2>&1
mydumper -h 127.0.0.1 -P $SRC_PORT -u root -t "$THREADS" -B sbtest -o "$WORK/dump-sbtest" >/dev/null 2>&1
myloader $MYLOADER_ARGS -h 127.0.0.1 -P $DST_PORT -u root -t "$THREADS" -d "$WORK/dump-many" >/dev/null 2>&1
myloader $MYLOADER_ARGS -h 127.0.0.1 -P $DST_PORT -u root -t "$THREADS" -d "$WORK/dump-sbtest" >/dev/null 2>&1
MYDUMPER=$(calc "$(now) - $t0")
[ "$(checksums dst)" = "$WANT" ] && echo "   $MYDUMPER s, equal" || { echo "   mydumper+myloader: NOT equal"; exit 1; }
rm -rf "$WORK"/dump-*

echo "== run $run: dm task-mode all (threads $THREADS)"
empty_target
rm -rf "$WORK/dm"
start_dm
{ task_head many all; task_body '"many", "sbtest"'; echo "    threads: $THREADS"; } > "$WORK/dm/many.yaml"
t0=$(now)
"$DM" ctl --master-addr $API start-task "$WORK/dm/many.yaml" >/dev/null
start_s=$(calc "$(now) - $t0")
until [ "$(field many tables_done 2>/dev/null || echo 0)" -ge 1 ] 2>/dev/null; do sleep 0.2; done
first_s=$(calc "$(now) - $t0")
echo "   start-task answered after $start_s s, first table copied after $first_s s"
wait_task many phase incremental
FULL=$(calc "$(now) - $t0")
echo "   full phase: $FULL s"

echo "== run $run: incremental: $WRITES single-row updates of random small tables, one ALTER TABLE among them"
t0=$(now)
head -n $((WRITES / 2)) "$WORK/writes.sql" | src
src -e "ALTER TABLE $(small 1) ADD COLUMN extra$run INT NOT NULL DEFAULT 7"
ddl_t0=$(now)
src -e "INSERT INTO $(small 2) (id, k, c) VALUES ($((1000000 + run)), 0, 'after the alter')"
tail -n +$((WRITES / 2 + 1)) "$WORK/writes.sql" | src &
W=$!
until [ "$(dst -e "SELECT COUNT(*) FROM $(small 2) WHERE id = $((1000000 + run))" 2>/dev/null)" = 1 ]; do sleep 0.05; done
DDL_S=$(calc "$(now) - $ddl_t0")
wait $W
end=$(pos); wait_task many position "$end"
read -r RSS _ <<< "$(dm_usage)"
WANT=$(checksums src)
[ "$(checksums dst)" = "$WANT" ] || { echo "   dm: NOT equal"; exit 1; }
echo "   equal; the row after the ALTER arrived after $DDL_S s; peak RSS $RSS MiB"
kill -9 "$DM_PID"; wait "$DM_PID" 2>/dev/null || true; DM_PID=
MYD+=("$MYDUMPER"); FULLS+=("$FULL"); FIRSTS+=("$first_s"); DDLS+=("$DDL_S"); RSSS+=("$RSS")
RATIOS+=("$(calc "$FULL / $MYDUMPER")")
done

echo
echo "== $SMALL small tables + $LARGE x $LARGE_SIZE rows, $(nproc) cores, $RUNS runs (min/median/max)"
echo "first table copied after start-task: $(spread "${FIRSTS[@]}") s (goal < 30 s)"
echo "full phase: dm $(spread "${FULLS[@]}") s, mydumper+myloader $(spread "${MYD[@]}") s"
echo "dm / mydumper+myloader: $(spread "${RATIOS[@]}")x (goal < 1.5x)"
echo "a row written right after an ALTER TABLE of another table reached the target in $(spread "${DDLS[@]}") s"
echo "dm peak RSS: $(spread "${RSSS[@]}") MiB (goal < 300 MiB); every run checksum-equal"
