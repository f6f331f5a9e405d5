//! Binlog files as a source (`binlog-dir`): files a server wrote, archived away from it, are
//! replayed into a target by an incremental task with the whole engine (filters, DDL,
//! parallel apply, checkpoints); files added to the directory later are replayed when the
//! stream gets to them. Ends equal to the server that wrote the files.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::time::Duration;

/// Copies the server's binlog files (not its index) into `to`: an archive of its binlog.
fn archive(src: &MariaDb, to: &Path) {
    let data = src.dir.path().join("data");
    for e in std::fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("mysql-bin.") && !name.ends_with(".index") {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// A source file for the binlog files of `dir` (`flavor`: the server that wrote them).
fn files_source(dm: &Dm, id: &str, flavor: &str, dir: &Path) -> std::path::PathBuf {
    dm.file(
        "source.yaml",
        &format!(
            "source-id: {id}\nflavor: {flavor}\nbinlog-dir: {}\n",
            dir.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn archived_binlog_files_replay_into_the_target_and_new_files_follow() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE shop; USE shop;
         CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL, j JSON, d DATETIME(6), b BLOB);
         INSERT INTO t SELECT seq, CONCAT('v', seq), JSON_OBJECT('k', seq), '2026-12-02 10:00:00.123456' + INTERVAL seq SECOND, UNHEX('00FF') FROM seq_1_to_2000;
         FLUSH BINARY LOGS;
         UPDATE t SET v = 'updated', j = JSON_ARRAY(id, 'x') WHERE id % 7 = 0;
         DELETE FROM t WHERE id % 11 = 0;
         ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 5;
         CREATE TABLE u LIKE t;
         INSERT INTO u SELECT * FROM t WHERE id < 300;
         CREATE DATABASE other; CREATE TABLE other.x (id INT PRIMARY KEY); INSERT INTO other.x VALUES (1);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    archive(&src, dir.path());

    let mut dm = Dm::start();
    let sf = files_source(&dm, "archive", "mariadb", dir.path());
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("replay", "incremental", "archive", &dst, &["shop"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "replay", &src).await;
    assert_same(&src, &dst, &["shop"]).await;
    assert!(tables_of(&dst, &["other"]).await.is_empty());

    // The server goes on: its current file grows in the archive, then its next file comes.
    src.exec("USE shop; UPDATE u SET c = c + id; INSERT INTO t (id, v) VALUES (100000, 'late');")
        .await;
    archive(&src, dir.path());
    wait_caught_up(&dm, "replay", &src).await;
    assert_same(&src, &dst, &["shop"]).await;
    src.exec("FLUSH BINARY LOGS; DROP TABLE shop.u; UPDATE shop.t SET v = 'next file';")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    archive(&src, dir.path());
    wait_caught_up(&dm, "replay", &src).await;
    assert_same(&src, &dst, &["shop"]).await;

    // After a kill -9 the replay resumes from its checkpoint, inside a file: nothing is
    // lost or applied twice (a repeated INSERT would stop on its duplicate key).
    dm.kill9();
    src.exec(
        "USE shop; INSERT INTO t (id, v) VALUES (100001, 'after'), (100002, 'restart');
         UPDATE t SET c = 0 WHERE id < 50;",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    archive(&src, dir.path());
    dm.restart();
    wait_caught_up(&dm, "replay", &src).await;
    assert_same(&src, &dst, &["shop"]).await;
    let st = dm.subtask("replay").unwrap();
    assert_eq!(st["stage"], "running", "{st}");
    assert_eq!(st["safe_mode"], false, "{st}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binlog_dir_source_is_checked_when_created_and_only_incremental_tasks_take_it() {
    let dst = MariaDb::start(2);
    let dm = Dm::start();
    let empty = tempfile::tempdir().unwrap();
    let sf = files_source(&dm, "archive", "mysql", empty.path());
    let (ok, out) = dm.ctl(&["operate-source", "create", sf.to_str().unwrap()]);
    assert!(!ok && out.contains("holds no binlog files"), "{out}");

    let no_flavor = dm.file("nf.yaml", "source-id: archive\nbinlog-dir: /tmp\n");
    let (ok, out) = dm.ctl(&["operate-source", "create", no_flavor.to_str().unwrap()]);
    assert!(!ok && out.contains("`flavor` is needed"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let fixture = fixtures("mysql-binlogs").join("binlog_transaction_with_GTID.000001");
    std::fs::copy(fixture, dir.path().join("binlog.000001")).unwrap();
    let sf = files_source(&dm, "archive", "mysql", dir.path());
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("replay", "all", "archive", &dst, &["test"]),
    );
    dm.ctl_ok(&["start-task", "--skip-precheck", tf.to_str().unwrap()]);
    let err = wait_paused(&dm, "replay").await;
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("only an incremental task replays")),
        "{err}"
    );
}

/// Replays the recorded MySQL binlog `file` (`../shared/fixtures/mysql-binlogs`) into `dst`
/// as the only file of a binlog-dir source, until the task has applied all of it.
async fn replay_recorded(dm: &Dm, dst: &MariaDb, file: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures("mysql-binlogs").join(file),
        dir.path().join("binlog.000001"),
    )
    .unwrap();
    let id = file.replace(['.', '_'], "-");
    let sf = files_source(dm, &id, "mysql", dir.path());
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    let tf = dm.file(
        &format!("task-{id}.yaml"),
        &task_yaml(&id, "incremental", &id, dst, &["foo"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_for(
        &format!("the replay of {file}"),
        Duration::from_secs(60),
        || {
            let st = dm.subtask(&id).unwrap_or_default();
            assert_ne!(st["stage"], "paused", "{file}: {st}\n{}", dm.log());
            st["synced"] == true
        },
    )
    .await;
}

async fn sorted_rows(dst: &MariaDb, sql: &str) -> Vec<String> {
    let mut rows: Vec<String> = dst.conn().await.query(sql).await.unwrap();
    rows.sort();
    rows
}

/// A recorded MySQL 8 binlog (`../shared/fixtures/mysql-binlogs`) replayed into MariaDB: its
/// own CREATE TABLE, then rows of a JSON column holding opaque values (DECIMAL, DATE, TIME,
/// DATETIME inside JSON), written as MySQL meant them.
#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_mysql_binlog_replays_into_mariadb() {
    let dst = MariaDb::start(2);
    let dm = Dm::start();
    replay_recorded(&dm, &dst, "json-opaque.binlog").await;
    let rows = sorted_rows(&dst, "SELECT CAST(a AS CHAR) FROM foo.test").await;
    // As MySQL prints them: a DECIMAL in JSON is a number, temporal values strings, other
    // opaque values base64 with their type.
    let mut want = vec![
        r#"{"a": "base64:type15:VQ=="}"#,
        r#"{"b": "2012-03-18"}"#,
        r#"{"c": "2012-03-18 11:30:45.000000"}"#,
        r#"{"c": "87:31:46.654321"}"#,
        r#"{"d": 123.456}"#,
        r#"{"e": 9.00}"#,
        r#"{"e": [0, 1, true, false]}"#,
        r#"{"e": null}"#,
    ];
    want.sort();
    assert_eq!(rows, want);
}
