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

    // A typo in an event name: the rule is left out, as TiDB DM leaves it out, and the
    // warning names the file, the rule and the event before anything runs.
    let bad = dm.file(
        "bad.yaml",
        &yaml.replace("events: [insert]", "events: [insertt]"),
    );
    let out = dm.ctl_ok(&["check-task", bad.to_str().unwrap()]);
    assert!(
        out.contains("the event `insertt` is not one TiDB DM knows")
            && out.contains("filters.audit-inserts-only"),
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

/// One column per TiDB DM expression (the others NULL), and the expression.
const TYPED: [(&str, &str, &str, &str, &str); 13] = [
    // (column, type, expression, kept value, filtered value)
    ("c_bit", "BIT(8)", "c_bit = b'1111'", "b'1010'", "b'1111'"),
    (
        "c_date",
        "DATE",
        "c_date = '2021-06-22'",
        "'1995-03-07'",
        "'2021-06-22'",
    ),
    (
        "c_datetime",
        "DATETIME(3)",
        "c_datetime = '2021-01-01 12:34:56.789'",
        "'1000-01-01 12:34:56.789'",
        "'2021-01-01 12:34:56.789'",
    ),
    (
        "c_timestamp",
        "TIMESTAMP(4) NULL",
        "c_timestamp = '2021-01-01 12:34:56.5678+08:00'",
        "'2020-01-01 12:34:56.1234'",
        "'2021-01-01 12:34:56.5678'",
    ),
    (
        "c_time",
        "TIME(5)",
        "c_time = '-838:58:50.12345'",
        "'-838:59:50.12345'",
        "'-838:58:50.12345'",
    ),
    ("c_year", "YEAR", "c_year = '2021'", "2020", "2021"),
    ("c_char", "CHAR(4)", "c_char = '2234'", "'1234'", "'2234'"),
    ("c_binary", "BINARY(1)", "c_binary = 'b'", "'a'", "'b'"),
    ("c_enum", "ENUM('a','b','c')", "c_enum = 'b'", "'a'", "'b'"),
    ("c_set", "SET('a','b','c')", "c_set = 'b,c'", "'a'", "'b,c'"),
    (
        "c_json",
        "JSON",
        "c_json->\"$.id\" = 2",
        "'{\"id\": 1}'",
        "'{\"id\": 2}'",
    ),
    (
        "ts",
        "DATETIME",
        "ts > NOW()",
        "'1999-01-01'",
        "'2040-01-01'",
    ),
    (
        "name",
        "VARCHAR(20) CHARACTER SET latin1",
        "name != 'Müller…'",
        "'Müller…'",
        "'X Æ A-12'",
    ),
];

/// Rows of `t` as text, sorted by id.
async fn rows(db: &MariaDb, sql: &str) -> Vec<Vec<String>> {
    let mut c = db.conn().await;
    let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
    rows.into_iter().map(text_row).collect()
}

/// TiDB DM's expression_filter workload, written in a +08:00 session: BIT against a bit
/// literal, DATE/DATETIME/TIMESTAMP/TIME against strings (fractions, an offset), YEAR, CHAR,
/// BINARY, ENUM and SET by name (as the binlog gives them, by number, and as the full phase
/// reads them, by name), JSON `->`, NOW(), latin1 text. Exactly the rows marked to skip are
/// dropped, in both phases; a filter on a column dropped later is false and the task goes on.
#[tokio::test(flavor = "multi_thread")]
async fn expressions_compare_as_mysql_compares() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    let columns: String = TYPED
        .iter()
        .map(|(c, ty, ..)| format!(", {c} {ty}"))
        .collect();
    src.exec(&format!(
        "CREATE DATABASE x; USE x;
         CREATE TABLE t1 (id INT PRIMARY KEY, should_skip INT{columns});
         CREATE TABLE t2 (id INT PRIMARY KEY, should_skip INT, c INT);
         CREATE TABLE t5 (id INT PRIMARY KEY, should_skip INT, c INT);
         INSERT INTO t5 VALUES (1, 0, 99), (2, 0, 101), (3, 0, 1), (4, 0, 1);"
    ))
    .await;
    // Rows of the full phase: ENUM, SET and TIMESTAMP as the copier reads them.
    let insert = |id: usize, skip: bool, i: usize| {
        let (col, _, _, kept, filtered) = TYPED[i];
        format!(
            "SET time_zone = '+08:00'; INSERT INTO x.t1 (id, should_skip, {col}) VALUES ({id}, {}, {});",
            u8::from(skip),
            if skip { filtered } else { kept }
        )
    };
    for (n, i) in [3, 8, 9, 10].into_iter().enumerate() {
        src.exec(&insert(1000 + 2 * n, false, i)).await;
        src.exec(&insert(1001 + 2 * n, true, i)).await;
    }
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let mut yaml = task_yaml("ex", "all", "src1", &dst, &["x"]);
    let names: Vec<String> = (0..TYPED.len()).map(|i| format!("e{i}")).collect();
    yaml = yaml.replacen(
        "    block-allow-list: sel\n",
        &format!(
            "    block-allow-list: sel\n    expression-filters: [{}, even-c, old-big, new-big, one-to-two]\n",
            names.join(", ")
        ),
        1,
    );
    yaml.push_str("expression-filter:\n  even-c:\n    schema: x\n    table: t2\n    insert-value-expr: \"c % 2 = 0\"\n");
    // Three update filters on one table: each decides on its own.
    for (name, old, new) in [
        ("old-big", Some("c > 100"), None),
        ("new-big", None, Some("c > 100")),
        ("one-to-two", Some("c = 1"), Some("c = 2")),
    ] {
        yaml.push_str(&format!("  {name}:\n    schema: x\n    table: t5\n"));
        if let Some(e) = old {
            yaml.push_str(&format!("    update-old-value-expr: \"{e}\"\n"));
        }
        if let Some(e) = new {
            yaml.push_str(&format!("    update-new-value-expr: \"{e}\"\n"));
        }
    }
    for (i, (_, _, expr, ..)) in TYPED.iter().enumerate() {
        yaml.push_str(&format!(
            "  e{i}:\n    schema: x\n    table: t1\n    insert-value-expr: '{}'\n",
            expr.replace('\'', "''")
        ));
    }
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "ex", &src).await;

    for i in 0..TYPED.len() {
        src.exec(&insert(2 * i, false, i)).await;
        src.exec(&insert(2 * i + 1, true, i)).await;
    }
    src.exec(
        "USE x; INSERT INTO t2 VALUES (1, 0, 1), (2, 1, 2);
         ALTER TABLE t2 DROP COLUMN c; INSERT INTO t2 VALUES (5, 0), (6, 0);
         ALTER TABLE t2 ADD COLUMN c INT; INSERT INTO t2 VALUES (7, 1, 8), (8, 0, 9);
         UPDATE t5 SET should_skip = 1, c = 110 WHERE id = 1;
         UPDATE t5 SET should_skip = 1, c = 20 WHERE id = 2;
         UPDATE t5 SET should_skip = 1, c = 2 WHERE id = 3;
         UPDATE t5 SET c = 3 WHERE id = 4;",
    )
    .await;
    wait_caught_up(&dm, "ex", &src).await;

    let t5 = rows(&dst, "SELECT * FROM x.t5 ORDER BY id").await;
    let want: Vec<Vec<String>> = [(1, 99), (2, 101), (3, 1), (4, 3)]
        .iter()
        .map(|(id, c)| vec![id.to_string(), "0".into(), c.to_string()])
        .collect();
    assert_eq!(t5, want, "x.t5: only the update no filter drops");
    for t in ["t1", "t2"] {
        let kept = format!("SELECT * FROM x.{t} WHERE should_skip = 0 ORDER BY id");
        let on_target = rows(&dst, &format!("SELECT * FROM x.{t} ORDER BY id")).await;
        assert_eq!(
            on_target,
            rows(&src, &kept).await,
            "x.{t}: the kept rows, only"
        );
    }
    assert_eq!(
        count(&dst, "SELECT COUNT(*) FROM x.t1").await,
        TYPED.len() as i64 + 4
    );
}

/// TiDB DM's finer event names: an ALTER whose DROP COLUMN a rule ignores runs without it
/// (its other changes applied, one statement each, as DM splits them), and rows go on. Rules
/// of the source file (DM's source-level `filters`) apply to the task too.
#[tokio::test(flavor = "multi_thread")]
async fn finer_ddl_event_names_and_source_level_filters() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE d; USE d;
         CREATE TABLE t (id INT PRIMARY KEY, keepme VARCHAR(10), v INT);
         INSERT INTO t SELECT seq, 'k', seq FROM seq_1_to_10;
         CREATE TABLE log (id INT PRIMARY KEY, v INT);
         INSERT INTO log SELECT seq, seq FROM seq_1_to_5;",
    )
    .await;
    let dm = Dm::start();
    let sf = dm.file(
        "source.yaml",
        &(source_yaml("src1", &src)
            + "filters:\n  - schema-pattern: d\n    table-pattern: log\n    events: [\"delete\"]\n    action: Ignore\n"),
    );
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    let mut yaml = task_yaml("fine", "all", "src1", &dst, &["d"]).replacen(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n    filter-rules: [no-column-drops]\n",
        1,
    );
    yaml.push_str(
        "filters:\n  no-column-drops:\n    schema-pattern: d\n    table-pattern: t\n    events: [\"drop column\", \"drop schema\"]\n    action: Ignore\n",
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "fine", &src).await;
    src.exec(
        "USE d; ALTER TABLE t ADD COLUMN added INT DEFAULT 7, DROP COLUMN keepme, ADD INDEX iv (v);
         INSERT INTO t (id, v) VALUES (11, 11); UPDATE t SET v = v + 100 WHERE id <= 3;
         DELETE FROM log WHERE id <= 2; INSERT INTO log VALUES (6, 6);",
    )
    .await;
    wait_caught_up(&dm, "fine", &src).await;
    assert_eq!(dm.subtask("fine").unwrap()["stage"], "running");
    // The target kept the column the rule protects and got the other changes.
    let cols = rows(
        &dst,
        "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = 'd' AND TABLE_NAME = 't'",
    )
    .await;
    assert_eq!(cols, vec![vec!["id,keepme,v,added".to_string()]]);
    assert_eq!(
        count(&dst, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'd' AND TABLE_NAME = 't' AND INDEX_NAME = 'iv'").await,
        1
    );
    // Rows applied by column; rows the source did not change since keep their value in the
    // column the source dropped (a changed row may be written whole, as in TiDB DM).
    let want = rows(&src, "SELECT id, v, added FROM d.t ORDER BY id").await;
    assert_eq!(
        rows(&dst, "SELECT id, v, added FROM d.t ORDER BY id").await,
        want
    );
    assert_eq!(
        count(
            &dst,
            "SELECT COUNT(*) FROM d.t WHERE id BETWEEN 4 AND 10 AND keepme = 'k'"
        )
        .await,
        7
    );
    // The source's rule kept the deleted log rows.
    assert_eq!(count(&dst, "SELECT COUNT(*) FROM d.log").await, 6);
}

/// TiDB DM's `case-sensitive`: by default `do-dbs: [Shop]` also selects `shop` (DM's
/// default); with `case-sensitive: true` only `Shop`.
#[tokio::test(flavor = "multi_thread")]
async fn case_sensitive_patterns_match_names_exactly() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE Shop; CREATE TABLE Shop.t (id INT PRIMARY KEY); INSERT INTO Shop.t VALUES (1); \
         CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (2)",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let exact = task_yaml("cs", "all", "src1", &dst, &["Shop"]).replacen(
        "task-mode: all\n",
        "task-mode: all\ncase-sensitive: true\n",
        1,
    );
    let tf = dm.file("task.yaml", &exact);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "cs", &src).await;
    src.exec("INSERT INTO Shop.t VALUES (3); INSERT INTO shop.t VALUES (4)")
        .await;
    wait_caught_up(&dm, "cs", &src).await;
    let dbs = rows(&dst, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ('Shop', 'shop') ORDER BY 1").await;
    assert_eq!(dbs, vec![vec!["Shop".to_string()]]);
    assert_same(&src, &dst, &["Shop"]).await;

    // By default both are selected. dm's meta tables tell `Shop.t` from `shop.t`, also
    // where an earlier version made their keys case-insensitive.
    dm.ctl_ok(&["stop-task", "cs"]);
    let dst2 = MariaDb::start(3);
    dst2.exec(
        "CREATE DATABASE dm_meta; CREATE TABLE dm_meta.ci_chunk (source_id VARCHAR(128) NOT NULL, \
         schema_name VARCHAR(128) NOT NULL, table_name VARCHAR(128) NOT NULL, chunk INT UNSIGNED NOT NULL, \
         lower_key LONGTEXT NULL, upper_key LONGTEXT NULL, binlog_name VARCHAR(255) NULL, \
         binlog_pos BIGINT UNSIGNED NULL, binlog_gtid LONGTEXT NULL, row_count BIGINT UNSIGNED NOT NULL DEFAULT 0, \
         byte_count BIGINT UNSIGNED NOT NULL DEFAULT 0, finished_at TIMESTAMP(6) NULL, \
         PRIMARY KEY (source_id, schema_name, table_name, chunk)) DEFAULT CHARSET = utf8mb4",
    )
    .await;
    let tf = dm.file(
        "any.yaml",
        &task_yaml("ci", "all", "src1", &dst2, &["Shop"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "ci", &src).await;
    assert_same(&src, &dst2, &["Shop", "shop"]).await;
    let collation: String = dst2
        .value("SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'dm_meta' AND TABLE_NAME = 'ci_chunk' AND COLUMN_NAME = 'table_name'")
        .await;
    assert_eq!(collation, "utf8mb4_bin");
}
