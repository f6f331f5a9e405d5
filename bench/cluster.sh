#!/usr/bin/env bash
# Many tasks on a cluster: one master (with its etcd member), WORKERS workers, SOURCES MariaDB
# sources and one target; TASKS tasks, task i migrating database d<i> (2 tables of 1,000
# rows) of source i % SOURCES. Once every task is in the incremental phase, a writer per source
# updates its databases' rows (WRITES_PER_SEC per source) for SECS seconds. Reports the CPU the
# leading master (and its etcd member, and each worker) used over those seconds as a share of
# one core (goal: leader under 20%), each process's peak RSS, and how long the tasks took to
# start. Every database ends checksum-equal.
#
#   bench/cluster.sh    (TASKS, SOURCES, WORKERS, SECS, WRITES_PER_SEC tune it)
TASKS=${TASKS:-50} SOURCES=${SOURCES:-8} WORKERS=${WORKERS:-3} SECS=${SECS:-60}
WRITES_PER_SEC=${WRITES_PER_SEC:-50}
WORK="${BENCH_DIR:-/tmp/dm-bench-cluster}"
source "$(dirname "$0")/lib.sh"
SRC0=24300 API=127.0.0.1:28361 ETCD_CLIENT=28379 ETCD_PEER=28380
export MARIADB_OPTS="--innodb-buffer-pool-size=32M --max-connections=300"
declare -a PIDS WRITERS
cleanup_cluster() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -f "$WORK/etcd" 2>/dev/null || true
  for s in $(seq 1 "$SOURCES"); do scripts/mariadb.sh stop "$WORK/source$s" || true; done
  scripts/mariadb.sh stop "$WORK/target" || true
}
trap cleanup_cluster EXIT
srcn() { mariadb -h127.0.0.1 -P$((SRC0 + $1)) -uroot -N "${@:2}"; }
ctl() { "$DM" ctl --master-addr $API "$@"; }
# CPU seconds of a process so far ($1: pid).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Peak resident memory of a process so far, MiB ($1: pid).
rss_of() { awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
checksums() { # $1: "src <n>" or "dst"; $2: database
  local q="CHECKSUM TABLE $2.a, $2.b"
  if [ "$1" = dst ]; then dst -e "$q"; else srcn "${1#src }" -e "$q"; fi | awk '{print $2}' | tr '\n' ' '
}

rm -rf "$WORK"; mkdir -p "$WORK"
echo "== $SOURCES sources, a target, $TASKS databases"
for s in $(seq 1 "$SOURCES"); do scripts/mariadb.sh start "$WORK/source$s" $((SRC0 + s)) $((10 + s)); done
scripts/mariadb.sh start "$WORK/target" $DST_PORT 2
for i in $(seq 1 "$TASKS"); do
  s=$(( (i % SOURCES) + 1 ))
  srcn $s -e "CREATE DATABASE d$i; USE d$i;
    CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL); CREATE TABLE b (id INT PRIMARY KEY, v INT NOT NULL);
    INSERT INTO a SELECT seq, 0 FROM seq_1_to_1000; INSERT INTO b SELECT seq, 0 FROM seq_1_to_1000;"
done

echo "== a master, $WORKERS workers"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/secret.key"; chmod 600 "$WORK/secret.key"
cat > "$WORK/master.yaml" <<YAML
name: m1
master-addr: $API
etcd:
  embed:
    data-dir: $WORK/etcd
    client-url: http://127.0.0.1:$ETCD_CLIENT
    peer-url: http://127.0.0.1:$ETCD_PEER
    initial-cluster: m1=http://127.0.0.1:$ETCD_PEER
secret-key-path: $WORK/secret.key
YAML
"$DM" master -c "$WORK/master.yaml" > "$WORK/master.log" 2>&1 &
MASTER=$!; PIDS+=("$MASTER")
for _ in $(seq 1 100); do ctl list-member >/dev/null 2>&1 && break; sleep 0.2; done
for w in $(seq 1 "$WORKERS"); do
  printf 'name: w%s\nmaster-addrs: [%s]\ndata-dir: %s\nstatus-addr: 127.0.0.1:%s\nsecret-key-path: %s\n' \
    "$w" "$API" "$WORK/w$w" $((28400 + w)) "$WORK/secret.key" > "$WORK/w$w.yaml"
  "$DM" worker -c "$WORK/w$w.yaml" > "$WORK/w$w.log" 2>&1 &
  PIDS+=("$!")
done
for s in $(seq 1 "$SOURCES"); do
  printf 'source-id: s%s\nenable-gtid: true\nfrom:\n  host: 127.0.0.1\n  port: %s\n  user: root\n  password: ""\n' \
    "$s" $((SRC0 + s)) > "$WORK/source$s.yaml"
  ctl operate-source create "$WORK/source$s.yaml" >/dev/null
done

echo "== $TASKS tasks"
t0=$(now)
for i in $(seq 1 "$TASKS"); do
  s=$(( (i % SOURCES) + 1 ))
  { task_head "t$i" all; printf 'mysql-instances:\n  - source-id: s%s\n    block-allow-list: sel\nblock-allow-list:\n  sel:\n    do-dbs: ["d%s"]\n' "$s" "$i"; } > "$WORK/t$i.yaml"
  ctl start-task "$WORK/t$i.yaml" >/dev/null
done
start_s=$(calc "$(now) - $t0")
for i in $(seq 1 "$TASKS"); do wait_task "t$i" phase incremental; done
all_s=$(calc "$(now) - $t0")
echo "   started in $start_s s, all incremental after $all_s s"

idle0=$(cpu_of $MASTER); sleep 10; idle=$(calc "($(cpu_of $MASTER) - $idle0) / 10 * 100")
ETCD=$(pgrep -P "$MASTER" | head -n 1 || true)
echo "== $SECS s of writes, $WRITES_PER_SEC per second per source"
declare -A W0
W0[master]=$(cpu_of $MASTER); W0[etcd]=$(cpu_of "$ETCD")
for w in $(seq 1 "$WORKERS"); do W0[w$w]=$(cpu_of "${PIDS[$w]}"); done
t0=$(now)
for s in $(seq 1 "$SOURCES"); do
  dbs=$(for i in $(seq 1 "$TASKS"); do if [ $(( (i % SOURCES) + 1 )) = "$s" ]; then echo "d$i"; fi; done | tr '\n' ' ')
  awk -v n="$((SECS * WRITES_PER_SEC))" -v dbs="$dbs" -v pause="$(calc "1 / $WRITES_PER_SEC")" -v seed="$s" \
    'BEGIN { srand(seed); k = split(dbs, d, " "); for (i = 0; i < n; i++) {
       printf "UPDATE %s.%s SET v = v + 1 WHERE id = %d; DO SLEEP(%s);\n", d[1 + int(rand() * k)], (rand() < 0.5 ? "a" : "b"), 1 + int(rand() * 1000), pause } }' |
    srcn "$s" &
  WRITERS+=("$!")
done
wait "${WRITERS[@]}"
wall=$(calc "$(now) - $t0")
declare -A USE
USE[master]=$(calc "($(cpu_of $MASTER) - ${W0[master]}) / $wall * 100")
USE[etcd]=$(calc "($(cpu_of "$ETCD") - ${W0[etcd]}) / $wall * 100")
for w in $(seq 1 "$WORKERS"); do USE[w$w]=$(calc "($(cpu_of "${PIDS[$w]}") - ${W0[w$w]}) / $wall * 100"); done

echo "== waiting for every task to catch up, then comparing"
for s in $(seq 1 "$SOURCES"); do
  end=$(srcn "$s" -e "SHOW MASTER STATUS" | awk '{print $1":"$2}')
  for i in $(seq 1 "$TASKS"); do
    if [ $(( (i % SOURCES) + 1 )) = "$s" ]; then wait_task "t$i" position "$end"; fi
  done
done
EQUAL=yes
for i in $(seq 1 "$TASKS"); do
  s=$(( (i % SOURCES) + 1 ))
  [ "$(checksums "src $s" "d$i")" = "$(checksums dst "d$i")" ] || { EQUAL=NO; echo "   d$i differs"; }
done

echo
echo "== $TASKS tasks over $SOURCES sources on $WORKERS workers, $(nproc) cores, $wall s of writes"
echo "tasks started (start-task answered) in $start_s s; all in the incremental phase after $all_s s"
printf 'leading master CPU: %.1f%% of a core under writes (goal < 20%%), %.1f%% idle, peak RSS %s MiB; its etcd member %.1f%%\n' \
  "${USE[master]}" "$idle" "$(rss_of $MASTER)" "${USE[etcd]}"
for w in $(seq 1 "$WORKERS"); do
  printf 'worker w%s CPU: %.1f%%, peak RSS %s MiB\n' "$w" "${USE[w$w]}" "$(rss_of "${PIDS[$w]}")"
done
echo "every database equal: $EQUAL"
[ "$EQUAL" = yes ]
