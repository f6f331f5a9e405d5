#!/usr/bin/env bash
# Starts or stops a private MariaDB server on a loopback port with its own datadir, binlog ROW
# and GTID, as the quick start and benchmarks use it.
#   scripts/mariadb.sh start <dir> <port> <server-id>
#   scripts/mariadb.sh stop <dir>
# MARIADB_OPTS adds server options (benchmarks give both servers the same ones).
set -euo pipefail
PATH="$PATH:/usr/sbin:/usr/local/sbin"
cmd=$1 dir=$2
case "$cmd" in
start)
  port=$3 id=$4
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
  fi
  mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" \
    --port="$port" --bind-address=127.0.0.1 --server-id="$id" --log-bin=mysql-bin \
    --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --innodb-buffer-pool-size=64M --skip-name-resolve --user="$(id -un)" ${MARIADB_OPTS:-} >"$dir/mysqld.log" 2>&1 &
  for _ in $(seq 1 100); do
    if mariadb -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
      mariadb -h127.0.0.1 -P"$port" -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION" >/dev/null 2>&1 || true
      exit 0
    fi
    sleep 0.1
  done
  echo "MariaDB on port $port did not start; see $dir/mysqld.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir/mysqld.pid" ]; then
    kill "$(cat "$dir/mysqld.pid")" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -f "$dir/mysqld.pid" ] || break; sleep 0.1; done
  fi
  ;;
esac
