//! Binlog event filters and expression filters drop exactly what they should, in the full
//! and the incremental phase; a refused event pauses the task naming the rule.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const RULES: &str = "
filters:
  keep-log-rows:
    schema-pattern: f
    table-pattern: logs
    events: [delete]
    action: Ignore
  audit-inserts-only:
    schema-pattern: f
    table-pattern: audit
    events: [insert]
    action: Do
  no-truncate:
    schema-pattern: f
    sql-pattern: ['(?i)^\\s*TRUNCATE']
    action: Ignore
  never-drop:
    schema-pattern: f
    table-pattern: refuse
    events: [drop table]
    action: Error
expression-filter:
  odd-orders:
    schema: f
    table: orders
    insert-value-expr: c % 2 = 0
    delete-value-expr: c > 1000
    update-new-value-expr: note = 'secret'
";

async fn count(db: &MariaDb, sql: &str) -> i64 {
    let mut c = db.conn().await;
    c.query_first(sql).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn event_and_expression_filters_drop_exactly_what_they_name() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE f; USE f;
         CREATE TABLE orders (id INT PRIMARY KEY, c INT, note VARCHAR(20));
         INSERT INTO orders SELECT seq, seq, 'start' FROM seq_1_to_20;
         CREATE TABLE logs (id INT PRIMARY KEY, v INT);
         INSERT INTO logs SELECT seq, 0 FROM seq_1_to_5;
         CREATE TABLE audit (id INT PRIMARY KEY, v INT);
         INSERT INTO audit SELECT seq, 0 FROM seq_1_to_3;
         CREATE TABLE t_trunc (id INT PRIMARY KEY);
         INSERT INTO t_trunc SELECT seq FROM seq_1_to_3;
         CREATE TABLE refuse (id INT PRIMARY KEY);",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let mut yaml = task_yaml("fl", "all", "src1", &dst, &["f"]).replacen(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n    filter-rules: [keep-log-rows, audit-inserts-only, no-truncate, never-drop]\n    expression-filters: [odd-orders]\n",
        1,
    );
    yaml.push_str(RULES);

    // A typo in an event name is caught with its line before anything runs.
    let bad = dm.file(
        "bad.yaml",
        &yaml.replace("events: [insert]", "events: [insertt]"),
    );
    let (ok, out) = dm.ctl(&["start-task", bad.to_str().unwrap()]);
    assert!(
        !ok && out.contains("unknown event `insertt`") && out.contains("bad.yaml:"),
        "{out}"
    );

    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "fl", &src).await;
    // Full phase: the expression filter drops even inserts; event filters copy everything.
    assert_eq!(count(&dst, "SELECT COUNT(*) FROM f.orders").await, 10);
    assert_eq!(
        count(&dst, "SELECT COUNT(*) FROM f.orders WHERE c % 2 = 0").await,
        0
    );
    assert_eq!(count(&dst, "SELECT COUNT(*) FROM f.logs").await, 5);

    src.exec(
        "USE f;
         INSERT INTO orders SELECT seq, seq, 'new' FROM seq_21_to_30;
         INSERT INTO orders VALUES (31, 1001, 'big');
         DELETE FROM orders WHERE id = 31;
         UPDATE orders SET note = 'secret' WHERE id = 1;
         UPDATE orders SET note = 'ok' WHERE id = 3;
         DELETE FROM orders WHERE id = 5;
         DELETE FROM logs WHERE id <= 2;
         INSERT INTO logs VALUES (6, 6);
         UPDATE audit SET v = 9;
         DELETE FROM audit WHERE id = 3;
         INSERT INTO audit VALUES (4, 4);
         TRUNCATE TABLE t_trunc;",
    )
    .await;
    wait_caught_up(&dm, "fl", &src).await;
    // orders: odd inserts only, the big row's delete dropped, the 'secret' update dropped.
    assert_eq!(count(&dst, "SELECT COUNT(*) FROM f.orders").await, 15);
    assert_eq!(
        count(&dst, "SELECT COUNT(*) FROM f.orders WHERE c % 2 = 0").await,
        0
    );
    assert_eq!(
        count(&dst, "SELECT COUNT(*) FROM f.orders WHERE id = 31").await,
        1
    );
    assert_eq!(
        count(
            &dst,
            "SELECT COUNT(*) FROM f.orders WHERE id = 1 AND note = 'start'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &dst,
            "SELECT COUNT(*) FROM f.orders WHERE id = 3 AND note = 'ok'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&dst, "SELECT COUNT(*) FROM f.orders WHERE id = 5").await,
        0
    );
    // logs: deletes ignored, inserts applied.
    assert_eq!(count(&dst, "SELECT COUNT(*) FROM f.logs").await, 6);
    // audit: only inserts.
    assert_eq!(count(&dst, "SELECT COUNT(*) FROM f.audit").await, 4);
    assert_eq!(
        count(&dst, "SELECT COUNT(*) FROM f.audit WHERE v = 9").await,
        0
    );
    // TRUNCATE matched the sql-pattern.
    assert_eq!(count(&dst, "SELECT COUNT(*) FROM f.t_trunc").await, 3);

    // A refused DDL pauses the task, naming the rule; the target keeps the table.
    src.exec("DROP TABLE f.refuse").await;
    wait_for("the task to pause", Duration::from_secs(30), || {
        dm.subtask("fl").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    let st = dm.subtask("fl").unwrap();
    assert_eq!(st["last_error"]["code"], "DM-FILTER-6003", "{st}");
    let msg = st["last_error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("never-drop") && msg.contains("DROP TABLE"),
        "{msg}"
    );
    assert_eq!(
        count(&dst, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'f' AND TABLE_NAME = 'refuse'").await,
        1
    );
}

/// A rule with `table-pattern: "*"` takes the schema's own events too, as in TiDB DM: an
/// ignored `DROP DATABASE` leaves the target's database and rows in place.
#[tokio::test(flavor = "multi_thread")]
async fn a_star_table_pattern_takes_database_events() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE keep; USE keep; CREATE TABLE keep.t (id INT PRIMARY KEY);
         INSERT INTO keep.t SELECT seq FROM seq_1_to_5;
         CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY);",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let mut yaml = task_yaml("db", "all", "src1", &dst, &["keep", "other"]).replacen(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n    filter-rules: [keep-db]\n",
        1,
    );
    yaml.push_str(
        "filters:\n  keep-db:\n    schema-pattern: keep\n    table-pattern: \"*\"\n    events: [\"drop database\"]\n    action: Ignore\n",
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "db", &src).await;
    src.exec(
        "USE other; DROP DATABASE IF EXISTS keep; INSERT INTO other.t SELECT seq FROM seq_1_to_3",
    )
    .await;
    wait_caught_up(&dm, "db", &src).await;
    assert_eq!(count(&dst, "SELECT COUNT(*) FROM keep.t").await, 5);
    assert_same(&src, &dst, &["other"]).await;
}
