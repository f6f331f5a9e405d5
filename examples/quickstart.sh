#!/usr/bin/env bash
# The quick start: two private MariaDB servers on loopback (source with binlog ROW + GTID and
# sample data, and a target), `dm standalone`, a source and a task created with `dm ctl`, the
# full phase, live writes followed by the incremental phase, and a source/target comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dm-target}"
DM="$CARGO_TARGET_DIR/release/dm"
WORK="${QUICKSTART_DIR:-/tmp/dm-quickstart}"
SRC_PORT=13306 DST_PORT=13307 API=127.0.0.1:8261

cleanup() {
  [ -n "${DM_PID:-}" ] && kill "$DM_PID" 2>/dev/null || true
  scripts/mariadb.sh stop "$WORK/source"; scripts/mariadb.sh stop "$WORK/target"
}
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
src() { mariadb -h127.0.0.1 -P$SRC_PORT -uroot --default-character-set=utf8mb4 "$@"; }
dst() { mariadb -h127.0.0.1 -P$DST_PORT -uroot --default-character-set=utf8mb4 "$@"; }

echo "== starting MariaDB source (:$SRC_PORT) and target (:$DST_PORT) in $WORK"
scripts/mariadb.sh start "$WORK/source" $SRC_PORT 1
scripts/mariadb.sh start "$WORK/target" $DST_PORT 2

echo "== sample data: shop.customers, shop.orders (100k rows)"
src -e "CREATE DATABASE shop CHARACTER SET utf8mb4;
  CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), created DATETIME(6));
  CREATE TABLE shop.orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer_id INT, amount DECIMAL(12,2), note TEXT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6));
  USE shop;
  INSERT INTO customers SELECT seq, CONCAT('customer ', seq, ' 😀'), CONCAT('c', seq, '@example.com'), NOW(6) FROM seq_1_to_1000;
  INSERT INTO orders (customer_id, amount, note) SELECT seq % 1000 + 1, seq / 7, REPEAT('x', seq % 50) FROM seq_1_to_100000;"

echo "== starting dm standalone (API on $API)"
sed "s#data-dir: .dm-data#data-dir: $WORK/dm-data#" dm.yaml > "$WORK/dm.yaml"
"$DM" standalone -c "$WORK/dm.yaml" > "$WORK/dm.log" 2>&1 &
DM_PID=$!
for _ in $(seq 1 50); do "$DM" ctl --master-addr $API query-status >/dev/null 2>&1 && break; sleep 0.2; done

echo "== dm ctl operate-source create examples/source.yaml"
"$DM" ctl --master-addr $API operate-source create examples/source.yaml
echo "== dm ctl check-task examples/task.yaml"
"$DM" ctl --master-addr $API check-task examples/task.yaml
echo "== dm ctl start-task examples/task.yaml"
"$DM" ctl --master-addr $API start-task examples/task.yaml

phase() { "$DM" ctl --master-addr $API -o json query-status quickstart | python3 -c 'import json,sys; s=json.load(sys.stdin)["subtasks"]; print(s[0]["phase"] if s else "")'; }
for _ in $(seq 1 300); do [ "$(phase)" = incremental ] && break; sleep 0.2; done
echo "== full phase done"
"$DM" ctl --master-addr $API query-status quickstart

echo "== live writes on the source while dm follows the binlog"
for i in $(seq 1 20); do
  src -e "USE shop; INSERT INTO orders (customer_id, amount, note) VALUES ($i, $i.5, 'live $i');
          UPDATE customers SET email = CONCAT('new', id, '@example.com') WHERE id = $i;
          DELETE FROM orders WHERE id = $((i * 3))"
done
src -e "ALTER TABLE shop.orders ADD COLUMN status ENUM('new','paid') NOT NULL DEFAULT 'new'; UPDATE shop.orders SET status = 'paid' WHERE id % 10 = 0"
target_pos=$(src -N -e "SHOW MASTER STATUS" | awk '{print $1":"$2}')
for _ in $(seq 1 300); do
  pos=$("$DM" ctl --master-addr $API -o json query-status quickstart | python3 -c 'import json,sys; print(json.load(sys.stdin)["subtasks"][0]["position"].split(" ")[0])')
  [ "$pos" = "$target_pos" ] && break; sleep 0.2
done
"$DM" ctl --master-addr $API query-status quickstart

echo "== comparing source and target"
src -N -e "CHECKSUM TABLE shop.customers, shop.orders EXTENDED" > "$WORK/source.sum"
dst -N -e "CHECKSUM TABLE shop.customers, shop.orders EXTENDED" > "$WORK/target.sum"
paste "$WORK/source.sum" "$WORK/target.sum" | awk '{printf "%-16s source %-12s target %s\n", $1, $2, $4}'
if diff -q "$WORK/source.sum" "$WORK/target.sum" >/dev/null; then
  echo "EQUAL: the target matches the source"
else
  echo "DIFFERENT: see $WORK/dm.log"; exit 1
fi
