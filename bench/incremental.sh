#!/usr/bin/env bash
# Catching up a binlog backlog: MariaDB's own replication (serial and its parallel modes)
# against dm, on the same machine, the same data and identically configured servers.
#
# A sysbench data set is prepared on the source and the datadir is copied as the starting
# point of every target; then WORKLOAD makes a backlog of EVENTS transactions:
#   oltp_write_only    two updates, a delete and an insert per transaction (the default);
#   oltp_update_index  one update of the indexed column `k` (hot secondary-index updates);
#   append             one auto-increment insert into tables with 2 secondary indexes.
# Each contender starts from a fresh copy and applies the backlog; the time is from its
# start until the target has all of it (dm: the time its checkpoint at the backlog's end was
# written in the target). Every result is checksummed against the source. Over RUNS runs it
# prints min/median/max of each contender's time, of dm / the best MariaDB mode of the run,
# of what a pass-through row filter plugin and a relay log cost, and dm's peak RSS.
#
#   bench/incremental.sh    (WORKLOAD, EVENTS, TABLES, SIZE, THREADS, RUNS, MODES, DM_WORKERS,
#                            DM_BATCH, DM_COMPACT, EXTRAS, REUSE tune it)
# MODES: MariaDB's modes, `serial` or slave_parallel_mode:threads (" ": none, dm alone).
# EXTRAS: `plugin relay`, the dm variants besides the plain one (empty: none).
TABLES=${TABLES:-8} SIZE=${SIZE:-100000} EVENTS=${EVENTS:-40000} THREADS=${THREADS:-4}
WORKLOAD=${WORKLOAD:-oltp_write_only} RUNS=${RUNS:-3}
MODES=${MODES:-serial optimistic:4 aggressive:4 optimistic:8 aggressive:8}
EXTRAS=${EXTRAS-plugin relay}
DM_WORKERS=${DM_WORKERS:-4} DM_BATCH=${DM_BATCH:-1000} DM_COMPACT=${DM_COMPACT:-true}
WORK="${BENCH_DIR:-/tmp/dm-bench-incremental}"
source "$(dirname "$0")/lib.sh"
case "$WORKLOAD" in
  oltp_write_only) SB_TEST=oltp_write_only PER_TXN=4 ;;
  oltp_update_index) SB_TEST=oltp_update_index PER_TXN=1 ;;
  append) SB_TEST=oltp_insert PER_TXN=1 ;;
  *) echo "WORKLOAD is oltp_write_only, oltp_update_index or append" >&2; exit 2 ;;
esac
sb() {
  sysbench "$SB_TEST" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=$SRC_PORT \
    --mysql-user=root --mysql-db=sbtest --tables="$TABLES" --table-size="$SIZE" "$@"
}
checksums() { # the CHECKSUM TABLE of every sysbench table
  local q="CHECKSUM TABLE $(seq -s, -f "sbtest.sbtest%g" 1 "$TABLES")"
  "$@" -e "$q" | awk '{print $2}' | tr '\n' ' '
}

# REUSE=1 keeps the data set and backlog of an earlier run with the same parameters.
PARAMS="$WORKLOAD $TABLES $SIZE $EVENTS $THREADS"
if [ "${REUSE:-0}" = 1 ] && [ "$(head -1 "$WORK/backlog.env" 2>/dev/null)" = "# $PARAMS" ]; then
  echo "== reusing the data set and backlog in $WORK"
  source "$WORK/backlog.env"
  rm -rf "$WORK/dm" "$WORK/target"
  scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
  # The start's grants are transactions after the backlog: both contenders apply them too.
  GTID1=$(src -e "SELECT @@gtid_binlog_pos")
  POS1=$(src -e "SHOW MASTER STATUS" | awk '{print $1":"$2}')
else
rm -rf "$WORK"; mkdir -p "$WORK"
echo "== preparing sysbench: $TABLES tables x $SIZE rows"
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
src -e "CREATE DATABASE sbtest"
sb prepare >/dev/null
if [ "$WORKLOAD" = append ]; then # a second secondary index besides sysbench's `k`
  for i in $(seq 1 "$TABLES"); do src -e "ALTER TABLE sbtest.sbtest$i ADD INDEX c_1 (c)"; done
fi
GTID0=$(src -e "SELECT @@gtid_binlog_pos")
scripts/mariadb.sh stop "$WORK/source"
cp -a "$WORK/source/data" "$WORK/base"
rm -f "$WORK/base"/mysql-bin.* "$WORK/base"/*.pid
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
read -r FILE0 OFFSET0 <<< "$(src -e "SHOW MASTER STATUS" | awk '{print $1, $2}')"

echo "== backlog: sysbench $SB_TEST, $EVENTS transactions on $THREADS threads"
sb run --events="$EVENTS" --time=0 --threads="$THREADS" >/dev/null
GTID1=$(src -e "SELECT @@gtid_binlog_pos")
POS1=$(src -e "SHOW MASTER STATUS" | awk '{print $1":"$2}')
WANT=$(checksums src)
printf '# %s\nGTID0=%q FILE0=%q OFFSET0=%q GTID1=%q POS1=%q WANT=%q\n' "$PARAMS" \
  "$GTID0" "$FILE0" "$OFFSET0" "$GTID1" "$POS1" "$WANT" > "$WORK/backlog.env"
fi
ROWS=$((EVENTS * PER_TXN))
echo "   backlog from GTID $GTID0 to $GTID1 ($POS1), $(du -sh "$WORK/source/data"/mysql-bin.0* | awk '{s = s " " $1} END {print s}')"

fresh_target() {
  scripts/mariadb.sh stop "$WORK/target" || true
  rm -rf "$WORK/target"; mkdir -p "$WORK/target"
  cp -a "$WORK/base" "$WORK/target/data"
  scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
  dst -e "RESET MASTER"
}

declare -A SECS EQUAL
record() { # $1: contender, $2: seconds; appends to the contender's list
  local stolen; stolen=$(calc "$(steal) - $STEAL0")
  SECS[$1]="${SECS[$1]:-} $2"
  [ "$(checksums dst)" = "$WANT" ] || { echo "   $1: NOT equal to the source"; exit 1; }
  echo "   $1: $2 s, equal (other guests took $stolen s of CPU meanwhile)"
}

replica() { # $1: serial or mode:threads
  local mode=${1%%:*} threads=${1##*:}
  [ "$1" = serial ] && mode=conservative threads=0
  fresh_target
  dst -e "SET GLOBAL gtid_slave_pos = '$GTID0'; SET GLOBAL slave_parallel_threads = $threads;
          SET GLOBAL slave_parallel_mode = '$mode';
          CHANGE MASTER TO master_host = '127.0.0.1', master_port = $SRC_PORT, master_user = 'root',
          master_use_gtid = slave_pos"
  local t0; t0=$(now) STEAL0=$(steal)
  dst -e "START SLAVE"
  until [ "$(dst -e 'SELECT @@gtid_slave_pos')" = "$GTID1" ]; do
    if dst -e "SHOW SLAVE STATUS\G" | grep -q "Last_SQL_Errno: [1-9]"; then
      dst -e "SHOW SLAVE STATUS\G" | grep "Last_SQL_Error"; exit 1
    fi
    sleep 0.05
  done
  local secs; secs=$(calc "$(now) - $t0")
  dst -e "STOP SLAVE"
  record "mariadb-$1" "$secs"
}

# dm from the backlog's start to its end on a fresh target; $1: contender name, $2: extra
# lines of the mysql-instances entry, $3: extra top-level lines.
declare -a RSS CALLS
declare -A CPU # dm's CPU seconds per contender, a list each
run_dm() {
  fresh_target
  rm -rf "$WORK/dm"; mkdir -p "$WORK/dm"
  { task_head bench incremental; cat <<YAML; printf '%s' "$3"; } > "$WORK/dm/task.yaml"
mysql-instances:
  - source-id: s1
    meta:
      binlog-gtid: "$GTID0"
      binlog-name: "$FILE0"
      binlog-pos: $OFFSET0
    block-allow-list: sel
    syncer-config-name: s
$2
block-allow-list:
  sel:
    do-dbs: ["sbtest"]
syncers:
  s:
    worker-count: $DM_WORKERS
    batch: $DM_BATCH
    compact: $DM_COMPACT
YAML
  start_dm
  local t0; t0=$(now) STEAL0=$(steal)
  "$DM" ctl --master-addr $API start-task "$WORK/dm/task.yaml" >/dev/null
  wait_task bench position "$POS1"
  # The checkpoint is written once every change before it is committed: its time is when
  # the target had the whole backlog (the status the wait polls is published after it).
  local done_at; done_at=$(dst -e "SELECT UNIX_TIMESTAMP(updated_at) FROM dm_meta.bench_checkpoint")
  read -r r c <<< "$(dm_usage)"
  CPU[$1]+="$c "
  [ "$1" = dm ] && RSS+=("$r")
  if [ "$1" = dm+plugin ]; then # calls of the plugin (each gets one or more transactions)
    CALLS+=("$("$DM" ctl --master-addr $API -o json query-status bench \
      | grep -o '"row_filter_batches": *[0-9]*' | grep -o '[0-9]*$' | head -1)")
  fi
  kill -9 "$DM_PID"; wait "$DM_PID" 2>/dev/null || true; DM_PID=
  record "$1" "$(calc "$done_at - $t0")"
}

WASM="$CARGO_TARGET_DIR-plugins/wasm32-unknown-unknown/release/pass_through.wasm"
if [[ " $EXTRAS " == *" plugin "* ]]; then
  (cd examples/plugins && CARGO_TARGET_DIR="$CARGO_TARGET_DIR-plugins" \
    cargo build -q --release --target wasm32-unknown-unknown -p pass_through)
fi
for run in $(seq 1 "$RUNS"); do
  for m in $MODES; do
    echo "== run $run: MariaDB replication, $m"
    replica "$m"
  done
  echo "== run $run: dm (worker-count $DM_WORKERS, batch $DM_BATCH, compact $DM_COMPACT)"
  run_dm dm "" ""
  if [[ " $EXTRAS " == *" plugin "* ]]; then
    echo "== run $run: dm with a pass-through row filter plugin (examples/plugins/pass-through)"
    run_dm dm+plugin "    plugins: [pass]" "plugins:
  pass:
    path: $WASM
"
  fi
  if [[ " $EXTRAS " == *" relay "* ]]; then
    echo "== run $run: dm reading through a relay log (the worker pulls the backlog to disk meanwhile)"
    SOURCE_EXTRA="enable-relay: true
" run_dm dm+relay "" ""
  fi
done

echo
echo "== catching up $EVENTS transactions of $WORKLOAD ($ROWS row changes), $(nproc) cores, $RUNS runs (min/median/max)"
printf '%-26s %-22s %10s\n' contender "seconds" "txn/s (median)"
for m in $(for x in $MODES; do echo "mariadb-$x"; done) dm $(for x in $EXTRAS; do echo "dm+$x"; done); do
  med=$(spread ${SECS[$m]} | cut -d/ -f2)
  printf '%-26s %-22s %10.0f\n' "$m" "$(spread ${SECS[$m]})" "$(calc "$EVENTS / $med")"
done
ratios=() plugin=() relay=() plugin_cpu=()
for i in $(seq 1 "$RUNS"); do
  best=$(for x in $MODES; do nth "${SECS[mariadb-$x]}" "$i"; done | sort -g | head -1)
  d=$(nth "${SECS[dm]}" "$i")
  # MODES=" " times dm alone (its extras against it, no replication to compare with).
  [ -z "$best" ] || ratios+=("$(calc "$best / $d")")
  for x in $EXTRAS; do
    pct=$(calc "($(nth "${SECS[dm+$x]}" "$i") / $d - 1) * 100")
    if [ "$x" = plugin ]; then
      plugin+=("$pct")
      plugin_cpu+=("$(calc "($(nth "${CPU[dm+$x]}" "$i") / $(nth "${CPU[dm]}" "$i") - 1) * 100")")
    else relay+=("$pct"); fi
  done
done
if [ ${#ratios[@]} -gt 0 ]; then
  echo "dm / best MariaDB mode of each run: $(spread "${ratios[@]}")x (goal >= 2.0x)"
fi
echo "dm peak RSS: $(spread "${RSS[@]}") MiB   dm CPU: $(spread ${CPU[dm]}) s"
if [ ${#plugin[@]} -gt 0 ]; then
  echo "pass-through plugin: $(spread "${plugin[@]}")% more time (goal < 5%)," \
    "$(spread "${plugin_cpu[@]}")% more dm CPU, $(spread "${CALLS[@]}") calls"
fi
if [ ${#relay[@]} -gt 0 ]; then echo "relay log: $(spread "${relay[@]}")% more time"; fi
echo "every run checksum-equal"
