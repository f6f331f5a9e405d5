#!/usr/bin/env bash
# Adding a table to a running task under load. A task runs on sysbench tables (A) while
# `sysbench oltp_write_only` writes them; a SIZE_B-row table B is added with `update-task`
# during the same load. Reports, over RUNS runs (min/median/max):
# - B's join time (update-task until the task took it over) against a cold full copy of B
#   alone on an idle source (goal: <= 1.5x);
# - A's apply rate under the load while B joins, against its rate under the same load without
#   B (goal: >= 70%): the load's transactions / seconds from its start until dm applied them.
# Also the least join/cold ratio this machine allows: the cold copy's share of the CPU over what
# the load alone leaves free (the copy does the same work beside the load, in the CPU left).
# Every run ends checksum-equal (A and B).
#
#   bench/join.sh    (TABLES, SIZE, SIZE_B, SECS, THREADS, RATE, RUNS tune it)
TABLES=${TABLES:-4} SIZE=${SIZE:-100000} SIZE_B=${SIZE_B:-1000000} SECS=${SECS:-20}
THREADS=${THREADS:-2} RATE=${RATE:-1000} RUNS=${RUNS:-3}
WORK="${BENCH_DIR:-/tmp/dm-bench-join}"
source "$(dirname "$0")/lib.sh"
sb() {
  sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=$SRC_PORT \
    --mysql-user=root --mysql-db=sbtest --tables="$TABLES" --table-size="$SIZE" "$@"
}
checksums() { # $1: src or dst
  local q="CHECKSUM TABLE big.b, $(seq -s, -f "sbtest.sbtest%g" 1 "$TABLES")"
  $1 -e "$q" | awk '{print $2}' | tr '\n' ' '
}
pos() { src -e "SHOW MASTER STATUS" | awk '{print $1":"$2}'; }
ctl() { "$DM" ctl --master-addr $API "$@" >/dev/null; }
task_file() { # $1: name, $2: task-mode, $3: do-dbs
  { task_head "$1" "$2"; task_body "$3"; echo "    threads: 2"; } > "$WORK/dm/$1.yaml"
}
joined() { # waits until the log says B joined
  until grep -q "tables joined the running task" "$WORK/dm/dm.log"; do sleep 0.05; done
}
# Busy jiffies and all jiffies of every core so far (/proc/stat).
cpu_ticks() { awk '/^cpu / {busy = $2 + $3 + $4 + $7 + $8; all = busy + $5 + $6; print busy, all}' /proc/stat; }

rm -rf "$WORK"; mkdir -p "$WORK"
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
echo "== preparing: sysbench $TABLES x $SIZE rows (A), big.b $SIZE_B rows (B)"
src -e "CREATE DATABASE sbtest"
sb prepare >/dev/null
src -e "CREATE DATABASE big; USE big; CREATE TABLE big.b (id BIGINT PRIMARY KEY, k INT NOT NULL,
        c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k));
        INSERT INTO big.b SELECT seq, seq % 10007, REPEAT('c', 120), REPEAT('p', 60) FROM seq_1_to_$SIZE_B;"

declare -a RATIO_B RATIO_A BOUND_B
for run in $(seq 1 "$RUNS"); do
  dst -e "DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS big; DROP DATABASE IF EXISTS dm_meta"
  rm -rf "$WORK/dm"; start_dm

  # B alone, idle source: the cold copy.
  task_file cold full '"big"'
  read -r busy0 all0 <<< "$(cpu_ticks)"
  t0=$(now); ctl start-task "$WORK/dm/cold.yaml"; wait_task cold stage finished
  cold=$(calc "$(now) - $t0"); ctl stop-task cold
  read -r busy1 all1 <<< "$(cpu_ticks)"
  cold_cpu=$(calc "($busy1 - $busy0) / ($all1 - $all0)")
  dst -e "DROP DATABASE big; DROP DATABASE dm_meta"

  # A under load, no copy.
  task_file ja all '"sbtest"'
  ctl start-task "$WORK/dm/ja.yaml"; wait_task ja phase incremental
  before=$(pos); wait_task ja position "$before"
  read -r busy0 all0 <<< "$(cpu_ticks)"
  t0=$(now); sb run --time="$SECS" --rate="$RATE" --threads="$THREADS" > "$WORK/sb-base.txt"
  end=$(pos); wait_task ja position "$end"; base_s=$(calc "$(now) - $t0")
  # What the load takes of the machine (source, dm, target): a copy under it gets the rest.
  read -r busy1 all1 <<< "$(cpu_ticks)"
  load_cpu=$(calc "($busy1 - $busy0) / ($all1 - $all0)")
  base_txn=$(awk '/transactions:/ {print $2}' "$WORK/sb-base.txt")

  # The same load while B joins.
  task_file ja all '"sbtest", "big"'
  t0=$(now)
  sb run --time="$SECS" --rate="$RATE" --threads="$THREADS" > "$WORK/sb-join.txt" &
  SB=$!
  ctl update-task "$WORK/dm/ja.yaml"
  joined; join_s=$(calc "$(now) - $t0")
  wait $SB; end=$(pos); wait_task ja position "$end"; load_s=$(calc "$(now) - $t0")
  join_txn=$(awk '/transactions:/ {print $2}' "$WORK/sb-join.txt")
  equal=no; [ "$(checksums src)" = "$(checksums dst)" ] && equal=yes
  [ $equal = yes ] || { echo "run $run: target differs"; exit 1; }
  read -r rss _ <<< "$(dm_usage)"
  kill -9 "$DM_PID"; wait "$DM_PID" 2>/dev/null || true; DM_PID=

  a_base=$(calc "$base_txn / $base_s"); a_join=$(calc "$join_txn / $load_s")
  printf 'run %d: B cold %.2f s, B joined in %.2f s (%.2fx; the cold copy kept %.0f%% of the CPU busy, the load alone %.0f%%: beside the load the copy work takes >= %.2fx); A %s txn/s alone, %s txn/s while B joins (%.0f%%); equal %s; dm peak RSS %d MiB\n' \
    "$run" "$cold" "$join_s" "$(calc "$join_s / $cold")" "$(calc "100 * $cold_cpu")" "$(calc "100 * $load_cpu")" "$(calc "$cold_cpu / (1 - $load_cpu)")" "$a_base" "$a_join" "$(calc "100 * $a_join / $a_base")" $equal "$rss"
  RATIO_B+=("$(calc "$join_s / $cold")"); BOUND_B+=("$(calc "$cold_cpu / (1 - $load_cpu)")"); RATIO_A+=("$(calc "$a_join / $a_base")")
done
echo
echo "== $RUNS runs, $(nproc) cores; sysbench oltp_write_only $THREADS threads at most $RATE txn/s for $SECS s"
echo "B join time / cold copy of B (min/median/max): $(spread "${RATIO_B[@]}")   goal <= 1.5"
echo "  least possible on this machine (the copy's CPU work in what the load leaves): $(spread "${BOUND_B[@]}")"
echo "A apply rate while B joins / without (min/median/max): $(spread "${RATIO_A[@]}")   goal >= 0.70"
