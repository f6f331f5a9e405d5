#!/usr/bin/env bash
# Catching up a binlog backlog: MariaDB's own replication (serial, and optimistic parallel)
# against dm, on the same machine, the same data and identically configured servers.
#
# A sysbench data set is prepared on the source and the datadir is copied as the starting
# point of every target; then `sysbench oltp_write_only` makes a backlog of EVENTS
# transactions. Each contender starts from a fresh copy and applies the backlog; the time is
# from its start until the target has all of it. Every result is checksummed against the
# source. Prints transactions/s, rows/s, the ratio dm / best MariaDB mode, dm's peak RSS, and
# what a pass-through row filter plugin costs (throughput and ns per row change), and what
# reading through a relay log costs.
#
#   bench/incremental.sh    (TABLES, SIZE, EVENTS, THREADS, PARALLEL, DM_WORKERS, DM_BATCH,
#                            DM_COMPACT tune it)
TABLES=${TABLES:-8} SIZE=${SIZE:-100000} EVENTS=${EVENTS:-40000} THREADS=${THREADS:-4}
DM_WORKERS=${DM_WORKERS:-4} DM_BATCH=${DM_BATCH:-1000} DM_COMPACT=${DM_COMPACT:-true} PARALLEL=${PARALLEL:-4}
WORK="${BENCH_DIR:-/tmp/dm-bench-incremental}"
source "$(dirname "$0")/lib.sh"
sb() {
  sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=$SRC_PORT \
    --mysql-user=root --mysql-db=sbtest --tables="$TABLES" --table-size="$SIZE" "$@"
}
checksums() { # the CHECKSUM TABLE of every sysbench table
  local q="CHECKSUM TABLE $(seq -s, -f "sbtest.sbtest%g" 1 "$TABLES")"
  "$@" -e "$q" | awk '{print $2}' | tr '\n' ' '
}

rm -rf "$WORK"; mkdir -p "$WORK"
echo "== preparing sysbench: $TABLES tables x $SIZE rows"
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
src -e "CREATE DATABASE sbtest"
sb prepare >/dev/null
GTID0=$(src -e "SELECT @@gtid_binlog_pos")
scripts/mariadb.sh stop "$WORK/source"
cp -a "$WORK/source/data" "$WORK/base"
rm -f "$WORK/base"/mysql-bin.* "$WORK/base"/*.pid
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
read -r FILE0 OFFSET0 <<< "$(src -e "SHOW MASTER STATUS" | awk '{print $1, $2}')"

echo "== backlog: sysbench oltp_write_only, $EVENTS transactions on $THREADS threads"
sb run --events="$EVENTS" --time=0 --threads="$THREADS" >/dev/null
GTID1=$(src -e "SELECT @@gtid_binlog_pos")
POS1=$(src -e "SHOW MASTER STATUS" | awk '{print $1":"$2}')
ROWS=$((EVENTS * 4)) # oltp_write_only: two updates, a delete and an insert per transaction
WANT=$(checksums src)
echo "   backlog from GTID $GTID0 to $GTID1 ($POS1)"

fresh_target() {
  scripts/mariadb.sh stop "$WORK/target" || true
  rm -rf "$WORK/target"; mkdir -p "$WORK/target"
  cp -a "$WORK/base" "$WORK/target/data"
  scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
  dst -e "RESET MASTER"
}

declare -A SECS EQUAL
replica() { # $1: mode name, $2: slave_parallel_threads
  fresh_target
  dst -e "SET GLOBAL gtid_slave_pos = '$GTID0'; SET GLOBAL slave_parallel_threads = $2;
          SET GLOBAL slave_parallel_mode = 'optimistic';
          CHANGE MASTER TO master_host = '127.0.0.1', master_port = $SRC_PORT, master_user = 'root',
          master_use_gtid = slave_pos"
  local t0; t0=$(now)
  dst -e "START SLAVE"
  until [ "$(dst -e 'SELECT @@gtid_slave_pos')" = "$GTID1" ]; do
    if dst -e "SHOW SLAVE STATUS\G" | grep -q "Last_SQL_Errno: [1-9]"; then
      dst -e "SHOW SLAVE STATUS\G" | grep "Last_SQL_Error"; exit 1
    fi
    sleep 0.05
  done
  SECS[$1]=$(calc "$(now) - $t0")
  dst -e "STOP SLAVE"
  [ "$(checksums dst)" = "$WANT" ] && EQUAL[$1]=yes || EQUAL[$1]=NO
  echo "   $1: ${SECS[$1]} s, equal: ${EQUAL[$1]}"
}

echo "== MariaDB replication, serial"
replica "mariadb-serial" 0
echo "== MariaDB replication, optimistic parallel ($PARALLEL threads)"
replica "mariadb-parallel" "$PARALLEL"

# dm from the backlog's start to its end on a fresh target; $1: contender name, $2: extra
# lines of the mysql-instances entry, $3: extra top-level lines.
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
  local t0; t0=$(now)
  "$DM" ctl --master-addr $API start-task "$WORK/dm/task.yaml" >/dev/null
  wait_task bench position "$POS1"
  SECS[$1]=$(calc "$(now) - $t0")
  read -r RSS_MB DM_CPU <<< "$(dm_usage)"
  kill -9 "$DM_PID"; wait "$DM_PID" 2>/dev/null || true; DM_PID=
  [ "$(checksums dst)" = "$WANT" ] && EQUAL[$1]=yes || EQUAL[$1]=NO
  echo "   $1: ${SECS[$1]} s, equal: ${EQUAL[$1]}"
}

echo "== dm (worker-count $DM_WORKERS, batch $DM_BATCH, compact $DM_COMPACT)"
run_dm dm "" ""
read -r DM_RSS DM_CPU_ALONE <<< "$RSS_MB $DM_CPU"

echo "== dm with a pass-through row filter plugin (examples/plugins/pass-through)"
(cd examples/plugins && CARGO_TARGET_DIR="$CARGO_TARGET_DIR-plugins" \
  cargo build -q --release --target wasm32-unknown-unknown -p pass_through)
WASM="$CARGO_TARGET_DIR-plugins/wasm32-unknown-unknown/release/pass_through.wasm"
run_dm dm+plugin "    plugins: [pass]" "plugins:
  pass:
    path: $WASM
"

echo "== dm reading through a relay log (enable-relay: the worker pulls the backlog to disk meanwhile)"
SOURCE_EXTRA="enable-relay: true
" run_dm dm+relay "" ""

echo
echo "== catching up $EVENTS transactions ($ROWS row changes), $(nproc) cores"
printf '%-18s %9s %10s %11s %6s\n' contender seconds "txn/s" "rows/s" equal
for m in mariadb-serial mariadb-parallel dm dm+plugin dm+relay; do
  printf '%-18s %9.2f %10.0f %11.0f %6s\n' "$m" "${SECS[$m]}" "$(calc "$EVENTS / ${SECS[$m]}")" \
    "$(calc "$ROWS / ${SECS[$m]}")" "${EQUAL[$m]}"
done
best=$(printf '%s\n%s\n' "${SECS[mariadb-serial]}" "${SECS[mariadb-parallel]}" | sort -g | head -1)
printf 'dm / best MariaDB mode: %.2fx   dm peak RSS: %d MiB   dm CPU: %s s\n' \
  "$(calc "$best / ${SECS[dm]}")" "$DM_RSS" "$DM_CPU_ALONE"
printf 'pass-through plugin: throughput %.1f%% lower, %.0f ns per row change\n' \
  "$(calc "(1 - ${SECS[dm]} / ${SECS[dm+plugin]}) * 100")" \
  "$(calc "(${SECS[dm+plugin]} - ${SECS[dm]}) * 1e9 / $ROWS")"
printf 'relay log: throughput %.1f%% lower\n' "$(calc "(1 - ${SECS[dm]} / ${SECS[dm+relay]}) * 100")"
[ "${EQUAL[mariadb-serial]}${EQUAL[mariadb-parallel]}${EQUAL[dm]}${EQUAL[dm+plugin]}${EQUAL[dm+relay]}" = yesyesyesyesyes ]
