//! check-task against servers set up to break each precheck: every finding fails with its
//! fix, and a clean setup passes.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn each_precheck_fails_on_a_server_that_breaks_it() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY, v INT);
         CREATE USER 'weak'@'127.0.0.1' IDENTIFIED BY 'w'; GRANT SELECT ON *.* TO 'weak'@'127.0.0.1';",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("ck", "all", "src1", &dst, &["p"]));
    let clean = dm.ctl_ok(&["check-task", tf.to_str().unwrap()]);
    assert!(!clean.contains("fail"), "{clean}");
    assert!(!clean.contains("cascading"), "{clean}");

    // A cascading foreign key in scope: a warning that says what will differ.
    src.exec(
        "CREATE TABLE p.parent (id INT PRIMARY KEY); \
         CREATE TABLE p.child (id INT PRIMARY KEY, pid INT, \
           CONSTRAINT fk_parent FOREIGN KEY (pid) REFERENCES p.parent (id) ON DELETE CASCADE)",
    )
    .await;
    let warned = dm.ctl_ok(&["check-task", tf.to_str().unwrap()]);
    assert!(
        warned.contains("foreign keys with cascading actions")
            && warned.contains("`p`.`child` -> `p`.`parent`")
            && warned.contains("ON DELETE CASCADE")
            && warned.contains("foreign-key-checks: true"),
        "{warned}"
    );
    src.exec("DROP TABLE p.child; DROP TABLE p.parent").await;

    // Statement-based binlog, a user without REPLICATION CLIENT/SLAVE, a target table with
    // other columns.
    src.exec("SET GLOBAL binlog_format = 'STATEMENT'").await;
    dst.exec("CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY, other TEXT)")
        .await;
    let weak = dm.file(
        "weak.yaml",
        &format!(
            "source-id: weak\nenable-gtid: true\nfrom:\n  host: 127.0.0.1\n  port: {}\n  user: weak\n  password: w\n",
            src.port
        ),
    );
    dm.ctl_ok(&["operate-source", "create", weak.to_str().unwrap()]);
    let tf = dm.file(
        "weak-task.yaml",
        &task_yaml("ck2", "all", "weak", &dst, &["p"]),
    );
    let (ok, out) = dm.ctl(&["--output", "json", "check-task", tf.to_str().unwrap()]);
    assert!(!ok, "{out}");
    let json = &out[..out.rfind(']').unwrap() + 1];
    let findings: serde_json::Value = serde_json::from_str(json).unwrap();
    let fails = |check: &str| {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check && f["level"] == "fail")
            .cloned()
    };
    let f = fails("binlog format").expect("binlog format fails");
    assert!(
        f["fix"].as_str().unwrap().contains("binlog_format = 'ROW'"),
        "{f}"
    );
    let f = fails("privileges").expect("privileges fail");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("REPLICATION CLIENT"),
        "{f}"
    );
    assert!(
        f["fix"].as_str().unwrap().contains("GRANT")
            && f["fix"].as_str().unwrap().contains("'weak'"),
        "{f}"
    );
    let f = fails("target tables").expect("target tables fail");
    assert!(f["message"].as_str().unwrap().contains("`p`.`t`"), "{f}");
    src.exec("SET GLOBAL binlog_format = 'ROW'").await;

    // A relay log whose disk has less free space than purge.remain-space asks for.
    let relayed = dm.file(
        "relayed.yaml",
        &format!(
            "{}enable-relay: true
purge:
  remain-space: 100000000
",
            source_yaml("relayed", &src)
        ),
    );
    dm.ctl_ok(&["operate-source", "create", relayed.to_str().unwrap()]);
    let tf = dm.file(
        "relay-task.yaml",
        &task_yaml("ck3", "all", "relayed", &dst, &["q"]),
    );
    let mut finding = serde_json::Value::Null;
    wait_for(
        "the relay's disk report",
        std::time::Duration::from_secs(20),
        || {
            let (_, out) = dm.ctl(&["--output", "json", "check-task", tf.to_str().unwrap()]);
            let all: serde_json::Value =
                serde_json::from_str(&out[..out.rfind(']').map_or(0, |i| i + 1)])
                    .unwrap_or_default();
            finding = all
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| f["check"] == "relay disk")
                .cloned()
                .unwrap_or_default();
            finding["message"]
                .as_str()
                .is_some_and(|m| m.contains("GiB free"))
        },
    )
    .await;
    assert_eq!(finding["level"], "warn", "{finding}");
    assert!(
        finding["fix"].as_str().unwrap().contains("purge-relay"),
        "{finding}"
    );
}

/// Checks and the tracker read table models two queries per database (a task over thousands
/// of tables starts in seconds): the models equal those read table by table, for every kind of
/// key and column, in two databases, with tables not asked for left out.
#[tokio::test(flavor = "multi_thread")]
async fn table_models_read_in_bulk_equal_those_read_one_by_one() {
    let src = MariaDb::start(1);
    src.exec(
        "CREATE DATABASE a; CREATE DATABASE b;
         CREATE TABLE a.pk (id INT UNSIGNED PRIMARY KEY, v VARCHAR(10), KEY (v));
         CREATE TABLE a.composite (x INT NOT NULL, y VARCHAR(20) NOT NULL, z INT,
           PRIMARY KEY (y, x), UNIQUE KEY u1 (z), UNIQUE KEY u2 (x, z));
         CREATE TABLE a.prefixed (t TEXT NOT NULL, n INT, UNIQUE KEY p (t(12)));
         CREATE TABLE a.keyless (e ENUM('x','y') NOT NULL, s SET('p','q'), g INT AS (LENGTH(e)) VIRTUAL,
           h INT AS (LENGTH(s)) PERSISTENT);
         CREATE TABLE a.left_out (id INT PRIMARY KEY);
         CREATE TABLE b.`we ird``name` (`col umn` BIGINT NOT NULL, UNIQUE KEY (`col umn`));",
    )
    .await;
    let mut conn = src.conn().await;
    let names: Vec<_> = [
        ("a", "pk"),
        ("a", "composite"),
        ("a", "prefixed"),
        ("a", "keyless"),
        ("b", "we ird`name"),
        ("b", "gone"),
    ]
    .iter()
    .map(|(d, t)| dm_core::table::TableName::new(*d, *t))
    .collect();
    let bulk = dm_core::schema::load_tables(&mut conn, &names)
        .await
        .unwrap();
    let mut one_by_one = vec![];
    for n in &names {
        if let Some(t) = dm_core::schema::load_table(&mut conn, n).await.unwrap() {
            one_by_one.push(t);
        }
    }
    assert_eq!(one_by_one.len(), 5);
    let key = |t: &dm_core::table::Table| t.name.to_string();
    let (mut bulk, mut one_by_one) = (bulk, one_by_one);
    bulk.sort_by_key(key);
    one_by_one.sort_by_key(key);
    assert_eq!(bulk, one_by_one);
    let composite = bulk.iter().find(|t| t.name.table == "composite").unwrap();
    assert_eq!(composite.primary_key, ["y", "x"]);
    assert_eq!(composite.unique_keys.len(), 2, "{composite:?}");
}
