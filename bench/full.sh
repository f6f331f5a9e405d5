#!/usr/bin/env bash
# Copying a data set into an empty target: mydumper + myloader, mariadb-dump | mariadb,
# server-side LOAD DATA of ready CSV files (a practical limit) and dm's full phase, on the same
# machine, the same data and identically configured servers.
#
# Data: sysbench tables (TABLES x SIZE rows) plus one table with a composite VARCHAR + INT
# key (COMP rows). Every contender starts from an empty target; every result is checksummed
# against the source. Prints seconds, rows/s, MB/s, the ratios and dm's peak RSS.
#
#   bench/full.sh    (TABLES, SIZE, COMP, THREADS, DM_THREADS, DM_ROWS, DM_DEFER tune it)
TABLES=${TABLES:-8} SIZE=${SIZE:-125000} COMP=${COMP:-200000} THREADS=${THREADS:-4}
DM_ROWS=${DM_ROWS:-50000} DM_DEFER=${DM_DEFER:-true} DM_THREADS=${DM_THREADS:-6}
WORK="${BENCH_DIR:-/tmp/dm-bench-full}"
source "$(dirname "$0")/lib.sh"

TABLE_LIST="$(seq -s' ' -f "sbtest.sbtest%g" 1 "$TABLES") comp.kv"
checksums() { "$@" -e "CHECKSUM TABLE ${TABLE_LIST// /,}" | awk '{print $2}' | tr '\n' ' '; }
# An empty target that is idle: a restart lets InnoDB finish flushing and purging what the
# previous contender left, which would otherwise run during (and slow) the next one.
empty_target() {
  dst -e "DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS comp; DROP DATABASE IF EXISTS dm_meta"
  scripts/mariadb.sh stop "$WORK/target"
  scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
}

rm -rf "$WORK"; mkdir -p "$WORK"
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
echo "== data: $TABLES x $SIZE sysbench rows + comp.kv with $COMP rows (VARCHAR + INT key)"
src -e "CREATE DATABASE sbtest; CREATE DATABASE comp"
sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=$SRC_PORT \
  --mysql-user=root --mysql-db=sbtest --tables="$TABLES" --table-size="$SIZE" prepare >/dev/null
src -e "USE comp; CREATE TABLE kv (k VARCHAR(32) NOT NULL, n INT NOT NULL, v VARCHAR(100), t DATETIME,
          PRIMARY KEY (k, n)) DEFAULT CHARSET utf8mb4;
        INSERT INTO kv SELECT CONCAT('key-', seq % 1000), seq, REPEAT('v', seq % 100), NOW() FROM seq_1_to_$COMP;
        ANALYZE TABLE kv"
ROWS=$((TABLES * SIZE + COMP))
MB=$(src -e "SELECT ROUND(SUM(DATA_LENGTH) / 1048576) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('sbtest','comp')")
WANT=$(checksums src)
declare -A SECS EQUAL CPU
mark() { T0=$(now); SRC_CPU0=$(server_cpu "$WORK/source"); DST_CPU0=$(server_cpu "$WORK/target"); }
finish() { # $1: contender; the time since `mark`
  SECS[$1]=$(calc "$(now) - $T0")
  CPU[$1]="$(calc "$(server_cpu "$WORK/source") - $SRC_CPU0")/$(calc "$(server_cpu "$WORK/target") - $DST_CPU0")"
  [ "$(checksums dst)" = "$WANT" ] && EQUAL[$1]=yes || EQUAL[$1]=NO
  echo "   $1: ${SECS[$1]} s, equal: ${EQUAL[$1]}"
}

echo "== mydumper -t $THREADS, then myloader -t $THREADS"
empty_target
mark
mydumper -h 127.0.0.1 -P $SRC_PORT -u root -t "$THREADS" -B sbtest -o "$WORK/dump-sbtest" >/dev/null 2>&1
mydumper -h 127.0.0.1 -P $SRC_PORT -u root -t "$THREADS" -B comp -o "$WORK/dump-comp" >/dev/null 2>&1
myloader -h 127.0.0.1 -P $DST_PORT -u root -t "$THREADS" -d "$WORK/dump-sbtest" >/dev/null 2>&1
myloader -h 127.0.0.1 -P $DST_PORT -u root -t "$THREADS" -d "$WORK/dump-comp" >/dev/null 2>&1
finish mydumper
rm -rf "$WORK"/dump-*

echo "== mariadb-dump --single-transaction | mariadb"
empty_target
mark
mariadb-dump -h127.0.0.1 -P$SRC_PORT -uroot --single-transaction --databases sbtest comp | dst
finish mariadb-dump

echo "== LOAD DATA INFILE of ready CSV files, $THREADS at a time (files made beforehand)"
empty_target
mkdir -p "$WORK/csv"; chmod 777 "$WORK/csv"
mariadb-dump -h127.0.0.1 -P$SRC_PORT -uroot --no-data --databases sbtest comp > "$WORK/csv/schema.sql"
for t in $TABLE_LIST; do src -e "SELECT * FROM $t INTO OUTFILE '$WORK/csv/$t.csv'"; done
mark
dst < "$WORK/csv/schema.sql"
printf '%s\n' $TABLE_LIST | xargs -P "$THREADS" -I{} \
  mariadb -h127.0.0.1 -P$DST_PORT -uroot -e "LOAD DATA INFILE '$WORK/csv/{}.csv' INTO TABLE {}"
finish load-data
rm -rf "$WORK/csv"

echo "== dm task-mode full (threads $DM_THREADS, rows per chunk $DM_ROWS, defer-indexes $DM_DEFER)"
empty_target
start_dm
mkdir -p "$WORK/dm"
{ task_head full full; task_body '"sbtest", "comp"'; cat <<YAML; } > "$WORK/dm/task.yaml"
    threads: $DM_THREADS
    rows: $DM_ROWS
    defer-indexes: $DM_DEFER
YAML
mark
"$DM" ctl --master-addr $API start-task "$WORK/dm/task.yaml" >/dev/null
wait_task full stage finished
finish dm
read -r RSS_MB DM_CPU <<< "$(dm_usage)"

echo
echo "== copying $ROWS rows ($MB MiB of InnoDB data), $(nproc) cores"
printf '%-14s %9s %10s %8s %6s  %s\n' contender seconds "rows/s" "MB/s" equal "CPU s source/target"
for m in mydumper mariadb-dump load-data dm; do
  printf '%-14s %9.2f %10.0f %8.1f %6s  %s\n' "$m" "${SECS[$m]}" "$(calc "$ROWS / ${SECS[$m]}")" \
    "$(calc "$MB / ${SECS[$m]}")" "${EQUAL[$m]}" "${CPU[$m]}"
done
printf 'dm / mydumper+myloader: %.2fx time   dm / LOAD DATA: %.2fx time   dm peak RSS: %d MiB   dm CPU: %s s\n' \
  "$(calc "${SECS[dm]} / ${SECS[mydumper]}")" "$(calc "${SECS[dm]} / ${SECS[load-data]}")" "$RSS_MB" "$DM_CPU"
[ "${EQUAL[mydumper]}${EQUAL[mariadb-dump]}${EQUAL[load-data]}${EQUAL[dm]}" = yesyesyesyes ]
