//! Shards merged into one table by routes, with extract columns: the target equals the union
//! of the shards, each row tagged with where it came from.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Row;

const ROUTES: &str = "
routes:
  merge-orders:
    schema-pattern: shard_*
    table-pattern: orders_*
    target-schema: merged
    target-table: orders
    extract-schema:
      schema-regexp: shard_(.*)
      target-column: c_schema
    extract-table:
      table-regexp: orders_(.*)
      target-column: c_table
";

const SHARDS: [(&str, &str); 4] = [
    ("shard_1", "orders_1"),
    ("shard_1", "orders_2"),
    ("shard_2", "orders_1"),
    ("shard_2", "orders_2"),
];

/// Rows of every shard as the merged table should hold them, sorted.
async fn expected(src: &MariaDb) -> Vec<Vec<String>> {
    let mut c = src.conn().await;
    let mut all = Vec::new();
    for (db, t) in SHARDS {
        let rows: Vec<Row> = c
            .query(format!(
                "SELECT id, v, note, '{}', '{}' FROM {db}.{t}",
                db.trim_start_matches("shard_"),
                t.trim_start_matches("orders_")
            ))
            .await
            .unwrap();
        all.extend(rows.into_iter().map(text_row));
    }
    all.sort();
    all
}

async fn merged(dst: &MariaDb) -> Vec<Vec<String>> {
    let mut c = dst.conn().await;
    let rows: Vec<Row> = c
        .query("SELECT id, v, note, c_schema, c_table FROM merged.orders")
        .await
        .unwrap();
    let mut all: Vec<Vec<String>> = rows.into_iter().map(text_row).collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_merge_into_one_table_with_extract_columns() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    for (db, t) in SHARDS {
        src.exec(&format!(
            "CREATE DATABASE IF NOT EXISTS {db}; USE {db};
             CREATE TABLE {t} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(10) NOT NULL DEFAULT 'n');
             INSERT INTO {t} (id, v) SELECT seq, seq FROM seq_1_to_50;"
        ))
        .await;
    }
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let mut yaml = task_yaml("mg", "all", "src1", &dst, &["shard_*"]).replacen(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n    route-rules: [merge-orders]\n",
        1,
    );
    yaml.push_str(ROUTES);
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "mg", &src).await;
    assert_eq!(merged(&dst).await.len(), 200);
    assert_eq!(merged(&dst).await, expected(&src).await);

    // Same keys in every shard: changes must land on their own shard's rows.
    for (i, (db, t)) in SHARDS.iter().enumerate() {
        src.exec(&format!(
            "USE {db}; UPDATE {t} SET v = v * 10 + {i} WHERE id <= 10;
             DELETE FROM {t} WHERE id BETWEEN 20 AND 20 + {i};
             INSERT INTO {t} (id, v) VALUES (100 + {i}, {i});
             UPDATE {t} SET id = id + 1000 WHERE id = 30;"
        ))
        .await;
    }
    // A column added shard by shard, with rows in between.
    src.exec("ALTER TABLE shard_1.orders_1 ADD COLUMN extra INT NOT NULL DEFAULT 7")
        .await;
    src.exec("INSERT INTO shard_1.orders_1 (id, v, extra) VALUES (500, 5, 8)")
        .await;
    src.exec("INSERT INTO shard_2.orders_2 (id, v) VALUES (500, 6)")
        .await;
    for (db, t) in &SHARDS[1..] {
        src.exec(&format!(
            "ALTER TABLE {db}.{t} ADD COLUMN extra INT NOT NULL DEFAULT 7"
        ))
        .await;
    }
    wait_caught_up(&dm, "mg", &src).await;
    assert_eq!(merged(&dst).await, expected(&src).await);
    let mut c = dst.conn().await;
    let extra: Option<i64> = c
        .query_first(
            "SELECT extra FROM merged.orders WHERE id = 500 AND c_schema = '1' AND c_table = '1'",
        )
        .await
        .unwrap();
    assert_eq!(extra, Some(8));
    dm.ctl_ok(&["query-status", "mg"]);
}
