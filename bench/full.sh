#!/usr/bin/env bash
# Copying a data set into an empty target: mydumper + myloader, mariadb-dump | mariadb,
# server-side LOAD DATA of ready CSV files (a practical limit) and dm's full phase, on the same
# machine, the same data and identically configured servers.
#
# DATA=sysbench: sysbench tables (TABLES x SIZE rows) plus one table with a composite
# VARCHAR + INT key (COMP rows). DATA=wide: WIDE tables of WIDE_ROWS rows with a ~2 KB JSON
# column and 3 secondary indexes. Every contender starts from an empty target; every result is
# checksummed against the source. Over RUNS runs it prints min/median/max of each
# contender's seconds and of dm's ratios to mydumper + myloader and to LOAD DATA, and dm's peak
# RSS.
#
#   bench/full.sh    (DATA, TABLES, SIZE, COMP, WIDE, WIDE_ROWS, THREADS, DM_THREADS, DM_ROWS,
#                     DM_DEFER, RUNS tune it)
DATA=${DATA:-sysbench} TABLES=${TABLES:-8} SIZE=${SIZE:-125000} COMP=${COMP:-200000}
WIDE=${WIDE:-2} WIDE_ROWS=${WIDE_ROWS:-100000} THREADS=${THREADS:-4} RUNS=${RUNS:-3}
DM_ROWS=${DM_ROWS:-50000} DM_DEFER=${DM_DEFER:-true} DM_THREADS=${DM_THREADS:-6}
WORK="${BENCH_DIR:-/tmp/dm-bench-full}"
source "$(dirname "$0")/lib.sh"

case "$DATA" in
  sysbench) DBS="sbtest comp" TABLE_LIST="$(seq -s' ' -f "sbtest.sbtest%g" 1 "$TABLES") comp.kv" ;;
  wide) DBS="wide" TABLE_LIST="$(seq -s' ' -f "wide.w%g" 1 "$WIDE")" ;;
  *) echo "DATA is sysbench or wide" >&2; exit 2 ;;
esac
checksums() { "$@" -e "CHECKSUM TABLE ${TABLE_LIST// /,}" | awk '{print $2}' | tr '\n' ' '; }
# An empty target that is idle: a restart lets InnoDB finish flushing and purging what the
# previous contender left, which would otherwise run during (and slow) the next one.
empty_target() {
  for db in $DBS dm_meta; do dst -e "DROP DATABASE IF EXISTS $db"; done
  scripts/mariadb.sh stop "$WORK/target"
  scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
}

rm -rf "$WORK"; mkdir -p "$WORK"
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
if [ "$DATA" = sysbench ]; then
  echo "== data: $TABLES x $SIZE sysbench rows + comp.kv with $COMP rows (VARCHAR + INT key)"
  src -e "CREATE DATABASE sbtest; CREATE DATABASE comp"
  sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=$SRC_PORT \
    --mysql-user=root --mysql-db=sbtest --tables="$TABLES" --table-size="$SIZE" prepare >/dev/null
  src -e "USE comp; CREATE TABLE kv (k VARCHAR(32) NOT NULL, n INT NOT NULL, v VARCHAR(100), t DATETIME,
            PRIMARY KEY (k, n)) DEFAULT CHARSET utf8mb4;
          INSERT INTO kv SELECT CONCAT('key-', seq % 1000), seq, REPEAT('v', seq % 100), NOW() FROM seq_1_to_$COMP;
          ANALYZE TABLE kv"
  ROWS=$((TABLES * SIZE + COMP))
else
  echo "== data: $WIDE x $WIDE_ROWS wide rows (a ~2 KB JSON document, 3 secondary indexes)"
  src -e "CREATE DATABASE wide"
  for i in $(seq 1 "$WIDE"); do
    src -e "USE wide; CREATE TABLE wide.w$i (id BIGINT NOT NULL PRIMARY KEY, k INT NOT NULL,
              email VARCHAR(64) NOT NULL, created DATETIME NOT NULL, doc JSON NOT NULL,
              KEY k (k), KEY email (email), KEY created (created)) DEFAULT CHARSET utf8mb4;
            INSERT INTO wide.w$i SELECT seq, seq % 10007, CONCAT('user', seq * 7919 % 1000003, '@example.com'),
              '2026-01-01' - INTERVAL seq SECOND,
              JSON_OBJECT('id', seq, 'tags', JSON_ARRAY('a', 'b', seq % 13), 'text', REPEAT(MD5(seq), 60))
              FROM seq_1_to_$WIDE_ROWS;
            ANALYZE TABLE wide.w$i" >/dev/null
  done
  ROWS=$((WIDE * WIDE_ROWS))
fi
MB=$(src -e "SELECT ROUND(SUM(DATA_LENGTH) / 1048576) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('${DBS// /\',\'}')")
WANT=$(checksums src)
declare -A SECS CPU ALL_CPU
declare -a RSS DM_CPU
mark() {
  T0=$(now) SRC_CPU0=$(server_cpu "$WORK/source") DST_CPU0=$(server_cpu "$WORK/target")
  TOOL_CPU0=$(children_cpu)
}
# $1: contender; appends the time since `mark` to its list, and the CPU seconds the source,
# the target and the contender's own processes used ($2, else those of the tools that ended).
finish() {
  local secs src dst tool; secs=$(calc "$(now) - $T0")
  src=$(calc "$(server_cpu "$WORK/source") - $SRC_CPU0")
  dst=$(calc "$(server_cpu "$WORK/target") - $DST_CPU0")
  tool=${2:-$(calc "$(children_cpu) - $TOOL_CPU0")}
  SECS[$1]="${SECS[$1]:-} $secs"
  CPU[$1]="$src/$dst/$tool"
  ALL_CPU[$1]="${ALL_CPU[$1]:-} $(calc "$src + $dst + $tool")"
  [ "$(checksums dst)" = "$WANT" ] || { echo "   $1: NOT equal to the source"; exit 1; }
  echo "   $1: $secs s, equal, $(calc "$src + $dst + $tool") CPU s"
}

# The CSV files LOAD DATA reads, made once, beforehand (not timed).
mkdir -p "$WORK/csv"; chmod 777 "$WORK/csv"
# shellcheck disable=SC2086
mariadb-dump -h127.0.0.1 -P$SRC_PORT -uroot --no-data --databases $DBS > "$WORK/csv/schema.sql"
for t in $TABLE_LIST; do src -e "SELECT * FROM $t INTO OUTFILE '$WORK/csv/$t.csv'"; done

for run in $(seq 1 "$RUNS"); do
  echo "== run $run: mydumper -t $THREADS, then myloader -t $THREADS $MYLOADER_ARGS"
  empty_target
  mark
  for db in $DBS; do
    mydumper -h 127.0.0.1 -P $SRC_PORT -u root -t "$THREADS" -B "$db" -o "$WORK/dump-$db" >/dev/null 2>&1
  done
  for db in $DBS; do
    myloader $MYLOADER_ARGS -h 127.0.0.1 -P $DST_PORT -u root -t "$THREADS" -d "$WORK/dump-$db" >/dev/null 2>&1
  done
  finish mydumper
  rm -rf "$WORK"/dump-*

  echo "== run $run: mariadb-dump --single-transaction | mariadb"
  empty_target
  mark
  # shellcheck disable=SC2086
  mariadb-dump -h127.0.0.1 -P$SRC_PORT -uroot --single-transaction --databases $DBS | dst
  finish mariadb-dump

  echo "== run $run: LOAD DATA INFILE of ready CSV files, $THREADS at a time"
  empty_target
  mark
  dst < "$WORK/csv/schema.sql"
  printf '%s\n' $TABLE_LIST | xargs -P "$THREADS" -I{} \
    mariadb -h127.0.0.1 -P$DST_PORT -uroot -e "LOAD DATA INFILE '$WORK/csv/{}.csv' INTO TABLE {}"
  finish load-data

  echo "== run $run: dm task-mode full (threads $DM_THREADS, rows per chunk $DM_ROWS, defer-indexes $DM_DEFER)"
  empty_target
  rm -rf "$WORK/dm"
  start_dm
  { task_head full full; task_body "$(printf '"%s", ' $DBS | sed 's/, $//')"; cat <<YAML; } > "$WORK/dm/task.yaml"
    threads: $DM_THREADS
    rows: $DM_ROWS
    defer-indexes: $DM_DEFER
YAML
  mark
  "$DM" ctl --master-addr $API start-task "$WORK/dm/task.yaml" >/dev/null
  wait_task full stage finished
  read -r r c <<< "$(dm_usage)"; RSS+=("$r"); DM_CPU+=("$c")
  finish dm "$c"
  kill -9 "$DM_PID"; wait "$DM_PID" 2>/dev/null || true; DM_PID=
done
rm -rf "$WORK/csv"

echo
echo "== copying $ROWS rows ($MB MiB of InnoDB data, DATA=$DATA), $(nproc) cores, $RUNS runs (min/median/max)"
printf '%-14s %-20s %10s %8s  %s\n' contender seconds "rows/s" "MB/s" "CPU s source/target/tool (last run)"
for m in mydumper mariadb-dump load-data dm; do
  med=$(spread ${SECS[$m]} | cut -d/ -f2)
  printf '%-14s %-20s %10.0f %8.1f  %s\n' "$m" "$(spread ${SECS[$m]})" "$(calc "$ROWS / $med")" \
    "$(calc "$MB / $med")" "${CPU[$m]}"
done
vs_myd=() vs_load=() cpu_myd=() cpu_load=() floor_load=()
for i in $(seq 1 "$RUNS"); do
  d=$(nth "${SECS[dm]}" "$i") c=$(nth "${ALL_CPU[dm]}" "$i")
  vs_myd+=("$(calc "$d / $(nth "${SECS[mydumper]}" "$i")")")
  vs_load+=("$(calc "$d / $(nth "${SECS[load-data]}" "$i")")")
  cpu_myd+=("$(calc "$c / $(nth "${ALL_CPU[mydumper]}" "$i")")")
  cpu_load+=("$(calc "$c / $(nth "${ALL_CPU[load-data]}" "$i")")")
  # The source's and the target's CPU alone, all cores busy: what dm's time could not go
  # below with dm itself free.
  floor_load+=("$(calc "($c - $(nth "${DM_CPU[*]}" "$i")) / $(nproc) / $(nth "${SECS[load-data]}" "$i")")")
done
echo "dm / mydumper+myloader: $(spread "${vs_myd[@]}")x (goal <= 0.6x)," \
  "CPU (servers + tools): $(spread "${cpu_myd[@]}")x"
echo "dm / LOAD DATA: $(spread "${vs_load[@]}")x (goal <= 0.85x)," \
  "CPU (servers + tools): $(spread "${cpu_load[@]}")x"
echo "the servers' CPU for dm's copy alone, spread over $(nproc) cores: $(spread "${floor_load[@]}")x" \
  "LOAD DATA's time (dm's ratio cannot go below it on this machine)"
echo "dm peak RSS: $(spread "${RSS[@]}") MiB   dm CPU: $(spread "${DM_CPU[@]}") s"
echo "every run checksum-equal"
