//! TiDB DM's own task and source files (`../shared/fixtures/tidb-dm/`: its sample and its
//! integration tests' files, read in place) run as they are written against private MariaDB
//! servers. Only what names a server changes: host, port, user and password (and the sample's
//! `flavor: mysql`, since these servers are MariaDB). The workloads are written here to what
//! each file's rules select and leave out; each test ends with a row-by-row comparison of the
//! target with what the rules say it must hold.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use serde_yaml::Value;

/// A DM file as YAML.
fn dm_file(path: &str) -> Value {
    let path = fixtures("tidb-dm").join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml::from_str(&text).unwrap()
}

/// `section` of `v` pointed at `db` (host, port, user, password).
fn point(v: &mut Value, section: &str, db: &MariaDb) {
    let m = v[section].as_mapping_mut().expect("a connection section");
    m.insert("host".into(), "127.0.0.1".into());
    m.insert("port".into(), Value::from(db.port));
    m.insert("user".into(), "root".into());
    m.insert("password".into(), "".into());
}

/// Creates a source from DM's file `path` pointed at `db`; `id` replaces its source-id (the
/// sample task names sources the sample source file does not).
fn create_source(dm: &Dm, path: &str, id: Option<&str>, db: &MariaDb) -> String {
    let mut v = dm_file(path);
    point(&mut v, "from", db);
    if v["flavor"] == "mysql" {
        v["flavor"] = "mariadb".into();
    }
    if let Some(id) = id {
        v["source-id"] = id.into();
    }
    let id = v["source-id"].as_str().unwrap().to_string();
    let f = dm.file(
        &format!("source-{id}.yaml"),
        &serde_yaml::to_string(&v).unwrap(),
    );
    dm.ctl_ok(&["operate-source", "create", f.to_str().unwrap()]);
    id
}

/// Starts DM's task file `path` pointed at `dst`; the task's name and start-task's answer.
fn start_task(dm: &Dm, path: &str, dst: &MariaDb) -> (String, String) {
    let mut v = dm_file(path);
    point(&mut v, "target-database", dst);
    let name = v["name"].as_str().unwrap().to_string();
    let f = dm.file("task.yaml", &serde_yaml::to_string(&v).unwrap());
    let answer = dm.ctl_ok(&["start-task", f.to_str().unwrap()]);
    (name, answer)
}

/// The rows `sql` returns, sorted: a multiset to compare.
async fn rows(db: &MariaDb, sql: &str) -> Vec<String> {
    let mut c = db.conn().await;
    let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out: Vec<String> = rows
        .into_iter()
        .map(|r| {
            let values: Vec<String> = r.unwrap().iter().map(|v| v.as_sql(false)).collect();
            values.join(",")
        })
        .collect();
    out.sort();
    out
}

/// `schema.table` of every table of `schemas`, sorted.
async fn tables(db: &MariaDb, schemas: &[&str]) -> Vec<String> {
    let list = schemas
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    rows(
        db,
        &format!("SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({list})"),
    )
    .await
    .into_iter()
    .map(|t| t.trim_matches('\'').to_string())
    .collect()
}

/// DM's sample `task_basic.yaml` with its sample `source.yaml` for both sources: schemas by
/// regular expression (`~^test.*`, `do`), tables by regular expression within them, full
/// phase then binlog, a table created later included, the others never created.
#[tokio::test(flavor = "multi_thread")]
async fn dm_sample_task_basic_selects_what_its_rules_say() {
    let (s1, s2, dst) = (MariaDb::start(1), MariaDb::start(2), MariaDb::start(3));
    s1.exec(
        "CREATE DATABASE test1; USE test1; CREATE TABLE test1.t1 (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO test1.t1 SELECT seq, CONCAT('a', seq) FROM seq_1_to_100; \
         CREATE TABLE test1.x (id INT PRIMARY KEY); INSERT INTO test1.x VALUES (1); \
         CREATE DATABASE do; CREATE TABLE do.do (id INT PRIMARY KEY, v INT); \
         INSERT INTO do.do SELECT seq, seq FROM seq_1_to_20; \
         CREATE TABLE do.other (id INT PRIMARY KEY); INSERT INTO do.other VALUES (1); \
         CREATE DATABASE foo; CREATE TABLE foo.t1 (id INT PRIMARY KEY); INSERT INTO foo.t1 VALUES (1)",
    )
    .await;
    s2.exec(
        "CREATE DATABASE test2; USE test2; CREATE TABLE test2.t2 (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO test2.t2 SELECT seq, CONCAT('b', seq) FROM seq_1_to_50",
    )
    .await;
    let dm = Dm::start();
    let a = create_source(&dm, "master/source.yaml", Some("instance118-4306"), &s1);
    let b = create_source(&dm, "master/source.yaml", Some("instance118-5306"), &s2);
    let (task, answer) = start_task(&dm, "master/task_basic.yaml", &dst);
    assert!(answer.contains("mydumper-thread"), "{answer}");
    s1.exec(
        "UPDATE test1.t1 SET v = 'changed' WHERE id < 10; DELETE FROM test1.t1 WHERE id > 90; \
         INSERT INTO test1.x VALUES (2); UPDATE do.do SET v = v * 2; INSERT INTO do.other VALUES (2); \
         CREATE TABLE test1.t3 (id INT PRIMARY KEY); INSERT INTO test1.t3 VALUES (1), (2)",
    )
    .await;
    s2.exec("INSERT INTO test2.t2 VALUES (51, 'late'); DELETE FROM test2.t2 WHERE id = 1")
        .await;
    wait_source_caught_up(&dm, &task, &a, &s1).await;
    wait_source_caught_up(&dm, &task, &b, &s2).await;
    // dmctl's habit: every task in detail (dm's --wide); by default a table of 100 columns.
    let more = dm.ctl_ok(&["query-status", "--more"]);
    assert!(
        more.contains("instance118-4306")
            && more.contains("instance118-5306")
            && more.contains("Rows loaded"),
        "{more}"
    );
    let compact = dm.ctl_ok(&["query-status"]);
    assert!(
        compact.contains("instance118-5306") && compact.lines().all(|l| l.chars().count() <= 100),
        "{compact}"
    );
    assert_eq!(
        tables(&dst, &["test1", "test2", "do", "foo"]).await,
        ["do.do", "test1.t1", "test1.t3", "test2.t2"]
    );
    for (src, t) in [
        (&s1, "test1.t1"),
        (&s1, "test1.t3"),
        (&s1, "do.do"),
        (&s2, "test2.t2"),
    ] {
        let sql = format!("SELECT * FROM {t}");
        assert_eq!(rows(src, &sql).await, rows(&dst, &sql).await, "{t}");
    }
}

/// DM's `all_mode` integration test files (two sources, deprecated `black-white-list`, TiDB
/// session variables, heartbeat and time zone settings, and a filter rule naming the event
/// `truncate`, which DM does not know: DM leaves that whole rule out, so TRUNCATE and DROP
/// TABLE replicate; dm does the same and says so when the task starts). The ignored database
/// never arrives.
#[tokio::test(flavor = "multi_thread")]
async fn dm_all_mode_files_run_as_in_dm_with_their_invalid_filter_left_out() {
    let (s1, s2, dst) = (MariaDb::start(1), MariaDb::start(2), MariaDb::start(3));
    for (src, t) in [(&s1, "t1"), (&s2, "t2")] {
        src.exec(&format!(
            "CREATE DATABASE all_mode; CREATE DATABASE ignore_db; USE all_mode; \
             CREATE TABLE all_mode.{t} (id INT PRIMARY KEY, name VARCHAR(20), ts TIMESTAMP NULL); \
             INSERT INTO all_mode.{t} SELECT seq, CONCAT('n', seq), FROM_UNIXTIME(1700000000 + seq) FROM seq_1_to_100; \
             CREATE TABLE all_mode.{t}_b (id INT PRIMARY KEY); INSERT INTO all_mode.{t}_b VALUES (1); \
             CREATE TABLE ignore_db.t (id INT PRIMARY KEY); INSERT INTO ignore_db.t VALUES (1)"
        ))
        .await;
    }
    let dm = Dm::start();
    let a = create_source(&dm, "tests/all_mode/conf/source1.yaml", None, &s1);
    let b = create_source(&dm, "tests/all_mode/conf/source2.yaml", None, &s2);
    let (task, answer) = start_task(&dm, "tests/all_mode/conf/dm-task.yaml", &dst);
    assert!(answer.contains("tidb_skip_utf8_check"), "{answer}");
    assert!(
        answer.contains("`truncate`") && answer.contains("leaves this whole rule out"),
        "{answer}"
    );
    s1.exec(
        "UPDATE all_mode.t1 SET name = 'upd' WHERE id <= 10; TRUNCATE TABLE all_mode.t1; \
         INSERT INTO all_mode.t1 VALUES (1000, 'after', NULL); INSERT INTO ignore_db.t VALUES (2)",
    )
    .await;
    s2.exec("DELETE FROM all_mode.t2 WHERE id > 95; DROP TABLE all_mode.t2")
        .await;
    wait_source_caught_up(&dm, &task, &a, &s1).await;
    wait_source_caught_up(&dm, &task, &b, &s2).await;
    assert_eq!(
        tables(&dst, &["all_mode", "ignore_db"]).await,
        ["all_mode.t1", "all_mode.t1_b", "all_mode.t2_b"]
    );
    for (src, t) in [(&s1, "t1"), (&s1, "t1_b"), (&s2, "t2_b")] {
        let sql = format!("SELECT * FROM all_mode.{t}");
        assert_eq!(rows(src, &sql).await, rows(&dst, &sql).await, "{t}");
    }
}

/// DM's `sharding` integration test files: `is-sharding: true` (pessimistic), routes merging
/// `sharding*.t*` of two sources into `db_target.t_target`, tables by regular expression. A
/// column added on every shard waits for all and is applied once; the merged table holds the
/// union of the shards.
#[tokio::test(flavor = "multi_thread")]
async fn dm_sharding_files_merge_the_shards_as_their_routes_say() {
    let (s1, s2, dst) = (MariaDb::start(1), MariaDb::start(2), MariaDb::start(3));
    let shard = |t: &str, from: u32| {
        format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20), n INT); \
             INSERT INTO {t} SELECT seq, CONCAT('{t}', seq), seq % 7 FROM seq_{from}_to_{}",
            from + 99
        )
    };
    s1.exec(&format!(
        "CREATE DATABASE sharding1; USE sharding1; {}; {}; CREATE TABLE sharding1.x (id INT PRIMARY KEY); INSERT INTO sharding1.x VALUES (1)",
        shard("sharding1.t1", 1),
        shard("sharding1.t2", 101)
    ))
    .await;
    s2.exec(&format!(
        "CREATE DATABASE sharding2; USE sharding2; {}",
        shard("sharding2.t3", 201)
    ))
    .await;
    let dm = Dm::start();
    let a = create_source(&dm, "tests/sharding/conf/source1.yaml", None, &s1);
    let b = create_source(&dm, "tests/sharding/conf/source2.yaml", None, &s2);
    let (task, _) = start_task(&dm, "tests/sharding/conf/dm-task.yaml", &dst);
    s1.exec(
        "INSERT INTO sharding1.t1 VALUES (1001, 'new', 1); UPDATE sharding1.t2 SET n = 0 WHERE id < 120; \
         DELETE FROM sharding1.t1 WHERE id BETWEEN 50 AND 60; INSERT INTO sharding1.x VALUES (2); \
         ALTER TABLE sharding1.t1 ADD COLUMN c INT DEFAULT 7; ALTER TABLE sharding1.t2 ADD COLUMN c INT DEFAULT 7; \
         INSERT INTO sharding1.t1 VALUES (1002, 'with c', 2, 70)",
    )
    .await;
    s2.exec(
        "UPDATE sharding2.t3 SET v = 'u' WHERE id > 290; ALTER TABLE sharding2.t3 ADD COLUMN c INT DEFAULT 7; \
         INSERT INTO sharding2.t3 VALUES (3001, 'with c', 3, 71)",
    )
    .await;
    wait_source_caught_up(&dm, &task, &a, &s1).await;
    wait_source_caught_up(&dm, &task, &b, &s2).await;
    assert_eq!(
        tables(&dst, &["db_target", "sharding1", "sharding2"]).await,
        ["db_target.t_target"]
    );
    let mut union = rows(
        &s1,
        "SELECT * FROM sharding1.t1 UNION ALL SELECT * FROM sharding1.t2",
    )
    .await;
    union.extend(rows(&s2, "SELECT * FROM sharding2.t3").await);
    union.sort();
    assert_eq!(union, rows(&dst, "SELECT * FROM db_target.t_target").await);
}
