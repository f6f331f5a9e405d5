//! Workflows of users coming from TiDB DM: replicating from an earlier position into a target
//! that a dump already filled, and taking over a DM task's checkpoint. Each ends with a
//! row-by-row comparison.

mod common;

use common::*;
use std::time::Duration;

/// A source with `s.t` (100 rows), changed after `at` (the returned position): 100 more rows,
/// updates and deletes of old ones.
async fn source_changed_after_a_position() -> (MariaDb, String) {
    let src = MariaDb::start(1);
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(20), u INT, UNIQUE KEY (u)); USE s; \
         INSERT INTO s.t SELECT seq, 'first', seq FROM seq_1_to_100",
    )
    .await;
    let at = src.master_pos().await;
    src.exec(
        "USE s; INSERT INTO s.t SELECT seq, 'second', seq FROM seq_101_to_200; \
         UPDATE s.t SET v = 'changed', u = u + 1000 WHERE id BETWEEN 10 AND 20; \
         DELETE FROM s.t WHERE id BETWEEN 30 AND 35",
    )
    .await;
    (src, at)
}

/// What a user does with a dump: `mariadb-dump` of the source loaded into the target.
fn dump_into(src: &MariaDb, dst: &MariaDb) {
    let dump = std::process::Command::new(find_binary("mariadb-dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "--single-transaction",
            "--databases",
            "s",
        ])
        .arg(format!("-P{}", src.port))
        .output()
        .unwrap();
    assert!(dump.status.success(), "{dump:?}");
    let mut load = std::process::Command::new(find_binary("mariadb"))
        .args(["-h", "127.0.0.1", "-u", "root"])
        .arg(format!("-P{}", dst.port))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &dump.stdout).unwrap();
    drop(load.stdin.take());
    assert!(load.wait().unwrap().success());
}

/// More changes after the dump, touching rows the dump has.
async fn change_after_the_dump(src: &MariaDb) {
    src.exec(
        "USE s; INSERT INTO s.t SELECT seq, 'third', seq FROM seq_201_to_250; \
         UPDATE s.t SET v = 'again' WHERE id BETWEEN 15 AND 120; \
         DELETE FROM s.t WHERE id BETWEEN 40 AND 45",
    )
    .await;
}

/// Starts task `inc`, incremental on `s` from `at` (`file:pos`, a task's `meta`).
fn start_incremental_at(dm: &Dm, dst: &MariaDb, at: &str) {
    let (name, pos) = at.split_once(':').unwrap();
    let yaml = task_yaml("inc", "incremental", "src1", dst, &["s"]).replace(
        "    block-allow-list: sel\n",
        &format!("    block-allow-list: sel\n    meta:\n      binlog-name: {name}\n      binlog-pos: {pos}\n"),
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
}

/// "Load a dump, then replicate from a slightly earlier position": an incremental task from
/// `meta` replays changes the dump already holds (inserts of rows the target has) without
/// pausing on a duplicate key, and ends equal.
#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_task_from_an_earlier_position_replays_what_the_dump_holds() {
    let (src, at) = source_changed_after_a_position().await;
    let dst = MariaDb::start(2);
    dump_into(&src, &dst);
    change_after_the_dump(&src).await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    start_incremental_at(&dm, &dst, &at);
    wait_caught_up(&dm, "inc", &src).await;
    let st = dm.subtask("inc").unwrap();
    assert_eq!(st["stage"], "running", "{st}");
    assert_same(&src, &dst, &["s"]).await;
    // Past the start position, changes are applied as they are again.
    src.exec("INSERT INTO s.t VALUES (500, 'late', 500)").await;
    wait_caught_up(&dm, "inc", &src).await;
    assert_eq!(dm.subtask("inc").unwrap()["safe_mode"], false);
    assert_same(&src, &dst, &["s"]).await;
}

/// TiDB DM's checkpoint table as DM creates it (dm/syncer/checkpoint.go), with DM's global
/// point of `src1` at `at` (written the way DM's relay names files) and a table point.
async fn leave_a_tidb_dm_checkpoint(dst: &MariaDb, task: &str, at: &str) {
    let (name, pos) = at.split_once(':').unwrap();
    let relay_name = name.replacen('.', "|000001.", 1);
    dst.exec(&format!(
        "CREATE DATABASE IF NOT EXISTS dm_meta; \
         CREATE TABLE dm_meta.`{task}_syncer_checkpoint` (
            id VARCHAR(32) NOT NULL, cp_schema VARCHAR(128) NOT NULL, cp_table VARCHAR(128) NOT NULL,
            binlog_name VARCHAR(128), binlog_pos INT UNSIGNED, binlog_gtid TEXT,
            exit_safe_binlog_name VARCHAR(128) DEFAULT '', exit_safe_binlog_pos INT UNSIGNED DEFAULT 0,
            exit_safe_binlog_gtid TEXT, table_info JSON NOT NULL, is_global BOOLEAN,
            create_time timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
            update_time timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
            UNIQUE KEY uk_id_schema_table (id, cp_schema, cp_table)); \
         INSERT INTO dm_meta.`{task}_syncer_checkpoint` (id, cp_schema, cp_table, binlog_name, binlog_pos, binlog_gtid, table_info, is_global) VALUES \
            ('src1', '', '', '{relay_name}', {pos}, '', '{{}}', 1), \
            ('src1', 's', 't', '{relay_name}', {pos}, '', '{{}}', 0), \
            ('other-source', '', '', 'mysql-bin.000001', 4, '', '{{}}', 1)"
    ))
    .await;
}

/// A DM task stopped with its checkpoint in the target: a dm task of the same name takes
/// over from DM's position (no full copy: nothing loaded), replays in safe mode what DM had
/// applied past its last saved checkpoint, and ends equal.
#[tokio::test(flavor = "multi_thread")]
async fn a_tidb_dm_checkpoint_in_the_target_is_taken_over() {
    let (src, at) = source_changed_after_a_position().await;
    let dst = MariaDb::start(2);
    // What DM had applied when it stopped: more than its checkpoint says.
    dump_into(&src, &dst);
    leave_a_tidb_dm_checkpoint(&dst, "dmtask", &at).await;
    change_after_the_dump(&src).await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("dmtask", "all", "src1", &dst, &["s"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "dmtask", &src).await;
    let st = dm.subtask("dmtask").unwrap();
    assert_eq!(st["stage"], "running", "{st}");
    assert_eq!(st["rows_loaded"], 0, "a full copy ran: {st}");
    assert!(
        dm.log().contains("took over TiDB DM's checkpoint"),
        "{}",
        dm.log()
    );
    assert_same(&src, &dst, &["s"]).await;
    // Restarted, dm resumes from its own checkpoint, not DM's again.
    src.exec("UPDATE s.t SET v = 'after' WHERE id = 1").await;
    wait_caught_up(&dm, "dmtask", &src).await;
    dm.ctl_ok(&["pause-task", "dmtask"]);
    dm.ctl_ok(&["resume-task", "dmtask"]);
    src.exec("INSERT INTO s.t VALUES (600, 'resumed', 600)")
        .await;
    wait_for("running again", Duration::from_secs(30), || {
        dm.subtask("dmtask")
            .is_some_and(|s| s["stage"] == "running")
    })
    .await;
    wait_caught_up(&dm, "dmtask", &src).await;
    assert_eq!(
        dm.log().matches("took over TiDB DM's checkpoint").count(),
        1
    );
    assert_same(&src, &dst, &["s"]).await;
}

/// `start-task --start-time`: replication starts at the first transaction written at or after
/// the time (found across binlog files), changes the target already holds are replayed in
/// safe mode; started again with an earlier time over its own checkpoint, the same.
#[tokio::test(flavor = "multi_thread")]
async fn start_time_starts_at_the_first_transaction_at_or_after_it() {
    let src = MariaDb::start(1);
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(20), u INT, UNIQUE KEY (u)); \
         USE s; INSERT INTO s.t SELECT seq, 'first', seq FROM seq_1_to_100",
    )
    .await;
    // The end of the last transaction before the time: where replication starts.
    let at = src.master_pos().await;
    src.exec("FLUSH BINARY LOGS").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The time as the source tells it, in its zone and in UTC.
    let local: String = src.value("SELECT CAST(NOW() AS CHAR)").await;
    let utc: String = src
        .value("SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%dT%H:%i:%sZ')")
        .await;
    src.exec(
        "USE s; INSERT INTO s.t SELECT seq, 'second', seq FROM seq_101_to_200; \
         UPDATE s.t SET v = 'changed', u = u + 1000 WHERE id BETWEEN 10 AND 20; FLUSH BINARY LOGS; \
         DELETE FROM s.t WHERE id BETWEEN 30 AND 35",
    )
    .await;
    let dst = MariaDb::start(2);
    dump_into(&src, &dst);
    change_after_the_dump(&src).await;

    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("st", "incremental", "src1", &dst, &["s"]),
    );
    let out = dm.ctl_ok(&["start-task", tf.to_str().unwrap(), "--start-time", &local]);
    assert!(
        out.contains(&format!("replicates from {at}")),
        "{at}: {out}"
    );
    wait_caught_up(&dm, "st", &src).await;
    assert_eq!(dm.subtask("st").unwrap()["stage"], "running");
    assert_same(&src, &dst, &["s"]).await;

    // Again from the same time (in UTC), over the task's own checkpoint.
    dm.ctl_ok(&["stop-task", "st"]);
    src.exec("USE s; UPDATE s.t SET v = 'while stopped' WHERE id > 150")
        .await;
    let out = dm.ctl_ok(&["start-task", tf.to_str().unwrap(), "--start-time", &utc]);
    assert!(
        out.contains(&format!("replicates from {at}")),
        "{at}: {out}"
    );
    wait_caught_up(&dm, "st", &src).await;
    assert_eq!(dm.subtask("st").unwrap()["stage"], "running");
    assert_same(&src, &dst, &["s"]).await;

    // A time that is not one, and one in the future: refused, saying why.
    dm.ctl_ok(&["stop-task", "st"]);
    let (ok, out) = dm.ctl(&[
        "start-task",
        tf.to_str().unwrap(),
        "--start-time",
        "yesterday",
    ]);
    assert!(!ok && out.contains("is not a date and time"), "{out}");
    let (ok, out) = dm.ctl(&[
        "start-task",
        tf.to_str().unwrap(),
        "--start-time",
        "2037-01-01 00:00:00",
    ]);
    assert!(!ok && out.contains("in the future"), "{out}");
}

/// `config export`, the standalone's data dir wiped, `config import`: the source (its password
/// encrypted in the exported file, readable with the deployment's key) and the task come
/// back, and the task resumes from its checkpoint in the target without copying again. Task
/// commands take the task file where dmctl does; `get-config` prints what is stored.
#[tokio::test(flavor = "multi_thread")]
async fn config_export_and_import_bring_a_deployment_back() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    let password = "Exported-pw-4411";
    src.exec(&format!(
        "CREATE USER dmsrc@'%' IDENTIFIED BY '{password}'; GRANT ALL ON *.* TO dmsrc@'%'; \
         CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         USE s; INSERT INTO s.t SELECT seq, 'first' FROM seq_1_to_500"
    ))
    .await;
    // The deployment's key lives outside the data dir, as a backup needs.
    let keys = tempfile::Builder::new()
        .prefix("dm-test-dm-key-")
        .tempdir()
        .unwrap();
    let key = keys.path().join("secret.key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    let mut dm = Dm::start_with(&format!("secret-key-path: {}\n", key.display()));
    let sf = dm.file(
        "source.yaml",
        &source_yaml("src1", &src)
            .replace("user: root", "user: dmsrc")
            .replace("password: \"\"", &format!("password: \"{password}\"")),
    );
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    let tf = dm.file("task.yaml", &task_yaml("ex", "all", "src1", &dst, &["s"]));
    let task_file = tf.to_str().unwrap();
    dm.ctl_ok(&["start-task", task_file]);
    wait_caught_up(&dm, "ex", &src).await;
    // A task file where dmctl takes a task: pause, resume, query-status -s.
    dm.ctl_ok(&["pause-task", task_file]);
    assert_eq!(dm.subtask("ex").unwrap()["stage"], "paused");
    dm.ctl_ok(&["resume-task", task_file]);
    let status = dm.ctl_ok(&["-o", "json", "query-status", task_file, "-s", "nosuch"]);
    assert!(!status.contains("\"source_id\""), "{status}");
    wait_for(
        "synced, in TiDB DM's words",
        Duration::from_secs(30),
        || {
            dm.subtask("ex").is_some_and(|s| {
                s["synced"] == true
                    && s["syncerBinlog"] == s["position"]
                    && s["masterBinlog"] == s["position"]
            })
        },
    )
    .await;
    // operate-source update: refused while a task uses the source.
    let (ok, out) = dm.ctl(&["operate-source", "update", sf.to_str().unwrap()]);
    assert!(!ok && out.contains("used by task `ex`"), "{out}");
    let stored = dm.ctl_ok(&["get-config", "task", "ex"]);
    assert!(stored.contains("name: ex"), "{stored}");

    let backup = dm.dir.path().join("backup");
    dm.ctl_ok(&["config", "export", "-p", backup.to_str().unwrap()]);
    let exported = std::fs::read_to_string(backup.join("sources/src1.yaml")).unwrap();
    assert!(
        exported.contains("enc:") && !exported.contains(password),
        "{exported}"
    );
    assert!(backup.join("tasks/ex.yaml").is_file());

    // The data dir is lost; the source keeps changing.
    dm.kill9();
    std::fs::remove_dir_all(dm.dir.path().join("data")).unwrap();
    src.exec("USE s; INSERT INTO s.t SELECT seq, 'second' FROM seq_501_to_600; UPDATE s.t SET v = 'x' WHERE id < 50")
        .await;
    dm.restart();
    let (ok, out) = dm.ctl(&["query-status", "ex"]);
    assert!(!ok, "a wiped dm still knows the task: {out}");
    dm.ctl_ok(&["config", "import", "-p", backup.to_str().unwrap()]);
    // Stopped, the source takes a new file; the task goes on with it.
    dm.ctl_ok(&["stop-task", "ex"]);
    let updated = dm.file(
        "source2.yaml",
        &std::fs::read_to_string(&sf)
            .unwrap()
            .replace("enable-gtid: true", "enable-gtid: false"),
    );
    dm.ctl_ok(&["operate-source", "update", updated.to_str().unwrap()]);
    let shown = dm.ctl_ok(&["-o", "json", "operate-source", "show", "-s", "src1"]);
    assert!(shown.contains("\"enable_gtid\": false"), "{shown}");
    dm.ctl_ok(&["start-task", task_file]);
    wait_caught_up(&dm, "ex", &src).await;
    let st = dm.subtask("ex").unwrap();
    assert_eq!(st["stage"], "running", "{st}");
    assert_eq!(
        st["rows_loaded"], 0,
        "the task copied again instead of resuming: {st}"
    );
    assert_same(&src, &dst, &["s"]).await;
}

/// TiDB DM's `mydumpers.*.where` and `extra-args: --where`: the full phase copies only the
/// rows satisfying the condition; the binlog is replicated whole (as in DM). Options dm has
/// no use for are accepted with a warning; a condition that is not one is refused.
#[tokio::test(flavor = "multi_thread")]
async fn where_restricts_the_rows_the_full_phase_copies() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         USE s; INSERT INTO s.t SELECT seq, 'old' FROM seq_1_to_200",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let task = |args: &str| {
        task_tuned(
            "wh",
            "all",
            &dst,
            &["s"],
            &[&format!("extra-args: \"{args}\"")],
            &[],
        )
    };
    let bad = dm.file("bad.yaml", &task("--where 'id > 1; DROP TABLE s.t'"));
    let (ok, out) = dm.ctl(&["start-task", bad.to_str().unwrap()]);
    assert!(!ok && out.contains("extra-args"), "{out}");
    let tf = dm.file(
        "task.yaml",
        &task("--consistency none --where 'id > 100 AND v = \\\"old\\\"'"),
    );
    // --consistency is taken (none: bracketed chunk snapshots), not warned about.
    let out = dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    assert!(!out.contains("--consistency"), "{out}");
    wait_caught_up(&dm, "wh", &src).await;
    src.exec("INSERT INTO s.t VALUES (300, 'new')").await;
    wait_caught_up(&dm, "wh", &src).await;
    let copied: i64 = dst.value("SELECT COUNT(*) FROM s.t").await;
    assert_eq!(copied, 101);
    let lowest: i64 = dst.value("SELECT MIN(id) FROM s.t").await;
    assert_eq!(lowest, 101);
    let new: i64 = dst.value("SELECT COUNT(*) FROM s.t WHERE id = 300").await;
    assert_eq!(new, 1);
}

/// TiDB DM's `task-mode: load&sync` on a directory Debian's mydumper wrote: the target gets
/// the dump's databases, tables and rows (quotes, semicolons, binary bytes, NULL, a 0 in an
/// AUTO_INCREMENT column), then the changes since the dump's position. Killed after its first
/// file, dm goes on with the next one: no file is imported twice.
#[tokio::test(flavor = "multi_thread")]
async fn load_and_sync_imports_a_mydumper_directory_and_resumes_by_file() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), b BLOB); \
         CREATE TABLE s.e (id INT PRIMARY KEY); USE s; \
         INSERT INTO s.t SELECT seq, CONCAT('r', seq, ELT(1 + seq % 4, ';', '''', '\"', '\\\\')), \
           IF(seq % 5 = 0, NULL, UNHEX(CONCAT('00FF3B27', HEX(seq)))) FROM seq_1_to_300; \
         SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO'; INSERT INTO s.t VALUES (0, 'zero', NULL)",
    )
    .await;
    let dump = tempfile::Builder::new()
        .prefix("dm-test-dump-")
        .tempdir()
        .unwrap();
    let out = std::process::Command::new(find_binary("mydumper"))
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-B",
            "s",
            "-r",
            "100",
            "-o",
        ])
        .arg(dump.path().join("d"))
        .args(["-P", &src.port.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let files = std::fs::read_dir(dump.path().join("d"))
        .unwrap()
        .filter(|e| {
            let n = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            n.starts_with("s.t.") && n.ends_with(".sql") && !n.contains("schema")
        })
        .count();
    assert!(files >= 3, "mydumper wrote {files} data files");
    src.exec(
        "USE s; INSERT INTO s.t (v) VALUES ('after'); UPDATE s.t SET v = 'changed' WHERE id < 20; \
         DELETE FROM s.t WHERE id BETWEEN 50 AND 60; INSERT INTO s.e VALUES (1)",
    )
    .await;

    let mut dm = Dm::start_with_failpoints("after-dump-file=4000");
    dm.create_source("src1", &src);
    let yaml = task_yaml("ld", "load&sync", "src1", &dst, &["s"]).replace(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n    loader-config-name: from-mydumper\n",
    ) + &format!(
        "loaders:\n  from-mydumper:\n    dir: {}\n    pool-size: 16\n",
        dump.path().join("d").display()
    );
    // Row filters would not see the dump's rows: refused, not ignored.
    let filtered = dm.file(
        "filtered.yaml",
        &(yaml.replace(
            "    loader-config-name: from-mydumper\n",
            "    loader-config-name: from-mydumper\n    expression-filters: [odd]\n",
        ) + "expression-filter:\n  odd:\n    schema: s\n    table: t\n    insert-value-expr: id % 2 = 1\n"),
    );
    let (ok, out) = dm.ctl(&["start-task", filtered.to_str().unwrap()]);
    assert!(
        !ok && out.contains("do not apply to the rows of a dump"),
        "{out}"
    );
    let tf = dm.file("task.yaml", &yaml);
    let answer = dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    assert!(answer.contains("pool-size"), "{answer}");
    let mut imported = 0i64;
    for _ in 0..200 {
        let mut c = dst.conn().await;
        let n: Option<i64> = mysql_async::prelude::Queryable::query_first(
            &mut c,
            "SELECT COUNT(*) FROM dm_meta.ld_dump_files",
        )
        .await
        .unwrap_or(None);
        imported = n.unwrap_or(0);
        if imported > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        imported, 1,
        "the first file is in, then the failpoint holds"
    );
    dm.kill9();
    dm.env.clear();
    dm.restart();
    wait_caught_up(&dm, "ld", &src).await;
    assert_eq!(dm.subtask("ld").unwrap()["stage"], "running");
    assert_same(&src, &dst, &["s"]).await;
    let recorded: i64 = dst
        .value("SELECT COUNT(*) FROM dm_meta.ld_dump_files")
        .await;
    assert_eq!(recorded as usize, files);
}

/// A dump directory for a test (`loaders.out.dir`), removed with it.
struct DumpDir {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl DumpDir {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("dm-test-dump-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("d");
        DumpDir { _tmp: tmp, dir }
    }

    /// `yaml` (a `task_yaml` or `task_tuned` file) with its instance's loader set to this dir.
    fn task(&self, yaml: String) -> String {
        yaml.replace(
            "    block-allow-list: sel\n",
            "    block-allow-list: sel\n    loader-config-name: out\n",
        ) + &format!("loaders:\n  out:\n    dir: {}\n", self.dir.display())
    }
}

/// `task-mode: dump` then `load&sync` through dm's own files. The dump (one reader, so tables
/// go one after the other) is killed after its first table while the source is written: the
/// restarted dump keeps that table's files and reads the others in a new snapshot, so the
/// dump's tables are at two positions and its `metadata` says so. `load&sync` imports the
/// files and replicates from the first position in safe mode up to the second: the rows the
/// later snapshot already holds are replayed without a duplicate-key pause, and the target
/// ends equal, types, odd names and binary values included.
#[tokio::test(flavor = "multi_thread")]
async fn dump_resumed_after_a_kill_then_load_and_sync_of_its_files_ends_equal() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s; USE s; \
         CREATE TABLE s.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), b BLOB, u INT, \
           d DATETIME(6), ts TIMESTAMP(3) NULL, n DECIMAL(20,6), f DOUBLE, bits BIT(10), y YEAR, \
           j JSON, e ENUM('a','b'), st SET('x','y'), g INT AS (id * 2) VIRTUAL, UNIQUE KEY (u)); \
         INSERT INTO s.t (id, v, b, u, d, ts, n, f, bits, y, j, e, st) SELECT seq, \
           CONCAT('r', seq, ELT(1 + seq % 4, ';', '''', '\"', '\\\\')), \
           IF(seq % 5 = 0, NULL, UNHEX(CONCAT('00FF3B27', HEX(seq)))), seq, \
           '2026-01-02 03:04:05.123456' + INTERVAL seq SECOND, '2001-02-03 04:05:06.789', \
           seq / 7, seq / 3, seq % 1024, 1990 + seq % 50, CONCAT('{\"k\": ', seq, '}'), \
           ELT(1 + seq % 2, 'a', 'b'), 'x,y' FROM seq_1_to_3000; \
         SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO'; INSERT INTO s.t (id, v, y) VALUES (0, 'zero', 0); \
         CREATE TABLE s.`a.b/c` (id INT PRIMARY KEY, v TEXT); INSERT INTO s.`a.b/c` VALUES (1, 'odd name'); \
         CREATE TABLE s.e (id INT PRIMARY KEY); \
         CREATE TABLE s.w (id INT PRIMARY KEY, v INT); INSERT INTO s.w SELECT seq, seq FROM seq_1_to_10",
    )
    .await;
    let dump = DumpDir::new();
    let (dir, with_dir) = (dump.dir.clone(), |yaml| dump.task(yaml));
    let mut dm = Dm::start_with_failpoints("after-dump-table=60000");
    dm.create_source("src1", &src);
    let dump_task = with_dir(task_tuned(
        "dp",
        "dump",
        &dst,
        &["s"],
        &["threads: 1", "rows: 1000"],
        &[],
    ));
    let tf = dm.file("dump.yaml", &dump_task);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let journal = dir.join("dm-dump.json");
    let tables_in_journal = || {
        std::fs::read(&journal)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|j| j["tables"].as_object().map(|t| t.len()))
            .unwrap_or(0)
    };
    wait_for("the first table dumped", Duration::from_secs(60), || {
        tables_in_journal() == 1
    })
    .await;
    assert!(!dir.join("metadata").exists());
    // Changes between the two runs: to the table dumped (its files hold the old rows) and to
    // one dumped after the restart (its files hold the new rows and the new column, which
    // replication from the first position must not replay over it: its own position).
    src.exec(
        "USE s; UPDATE s.t SET v = 'between' WHERE id <= 100; DELETE FROM s.t WHERE id BETWEEN 200 AND 210; \
         INSERT INTO s.w SELECT seq, seq FROM seq_11_to_50; UPDATE s.w SET v = v + 100 WHERE id <= 5; \
         ALTER TABLE s.w ADD COLUMN extra INT DEFAULT 9; UPDATE s.w SET extra = id WHERE id > 45",
    )
    .await;
    dm.kill9();
    dm.env.clear();
    dm.restart();
    wait_for("the dump finished", Duration::from_secs(60), || {
        dm.subtask("dp").is_some_and(|s| s["stage"] == "finished")
    })
    .await;
    assert_eq!(tables_in_journal(), 4);
    let metadata = std::fs::read_to_string(dir.join("metadata")).unwrap();
    assert!(metadata.contains("SHOW MASTER STATUS:"), "{metadata}");
    assert!(
        metadata.contains("dm safe mode until:"),
        "two snapshots, two positions:\n{metadata}"
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for want in [
        "s-schema-create.sql",
        "s.t-schema.sql",
        "s.t.00000.sql",
        "s.t.00003.sql",
        "s.a@2eb@2fc-schema.sql",
        "s.e-schema.sql",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "s.t.00004.sql"), "{names:?}");
    let mode = |n: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(n)).unwrap().permissions(),
        ) & 0o777
    };
    assert_eq!(mode("s.t.00000.sql"), 0o600);
    dm.ctl_ok(&["stop-task", "dp"]);
    // mydumper's own loader takes the files too. One thread: with several, myloader's own
    // sessions can deadlock each other on the target (seen once), which says nothing of the
    // files.
    let out = std::process::Command::new(find_binary("myloader"))
        .args([
            "-t",
            "1",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-s",
            "s",
            "-B",
            "copy",
            "-d",
        ])
        .arg(&dir)
        .args(["-P", &dst.port.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let copied: i64 = dst.value("SELECT COUNT(*) FROM copy.t").await;
    let same: i64 = dst
        .value("SELECT COUNT(*) FROM copy.t c JOIN (SELECT 1) x WHERE c.b <=> UNHEX(CONCAT('00FF3B27', HEX(c.id))) OR c.id % 5 = 0 OR c.id = 0")
        .await;
    assert_eq!((copied, same), (3001, 3001));
    dst.exec("DROP DATABASE copy").await;

    src.exec("USE s; INSERT INTO s.t (v) VALUES ('after'); UPDATE s.w SET v = 0 WHERE id > 40")
        .await;
    let load = with_dir(task_yaml("ls", "load&sync", "src1", &dst, &["s"]));
    let tf = dm.file("load.yaml", &load);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "ls", &src).await;
    assert_eq!(dm.subtask("ls").unwrap()["stage"], "running");
    assert_same(&src, &dst, &["s"]).await;
}

/// dmctl's `-s`: pause and resume one source's subtask while the other goes on; stop one
/// source's subtask and the task goes on with the other.
#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_stop_one_source_of_a_task() {
    let (s1, s2, dst) = (MariaDb::start(1), MariaDb::start(2), MariaDb::start(3));
    for (db, schema) in [(&s1, "a"), (&s2, "b")] {
        db.exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {schema}.t (id INT PRIMARY KEY)"
        ))
        .await;
    }
    let dm = Dm::start();
    dm.create_source("src1", &s1);
    dm.create_source("src2", &s2);
    let yaml = task_yaml("two", "all", "src1", &dst, &["a", "b"]).replace(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n  - source-id: src2\n    block-allow-list: sel\n",
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_source_caught_up(&dm, "two", "src1", &s1).await;
    wait_source_caught_up(&dm, "two", "src2", &s2).await;

    dm.ctl_ok(&["pause-task", "two", "-s", "src2"]);
    wait_for("src2 paused", Duration::from_secs(30), || {
        subtask_of(&dm, "two", "src2").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    s1.exec("INSERT INTO a.t VALUES (1)").await;
    s2.exec("INSERT INTO b.t VALUES (1)").await;
    wait_source_caught_up(&dm, "two", "src1", &s1).await;
    let held: i64 = dst.value("SELECT COUNT(*) FROM b.t").await;
    assert_eq!(held, 0, "a paused source's rows arrived");
    dm.ctl_ok(&["resume-task", "two", "-s", "src2"]);
    wait_source_caught_up(&dm, "two", "src2", &s2).await;
    assert_same(&s2, &dst, &["b"]).await;

    dm.ctl_ok(&["stop-task", "two", "-s", "src1"]);
    let status = dm.ctl_ok(&["-o", "json", "query-status", "two"]);
    assert!(!status.contains("\"src1\""), "{status}");
    s2.exec("INSERT INTO b.t VALUES (2)").await;
    wait_source_caught_up(&dm, "two", "src2", &s2).await;
    assert_same(&s2, &dst, &["b"]).await;
    let (ok, out) = dm.ctl(&["pause-task", "two", "-s", "nosuch"]);
    assert!(!ok && out.contains("no source `nosuch`"), "{out}");
}

/// `shard-ddl-lock unlock --exec -f` (TiDB DM's force remove): the DDL a lock holds fails on
/// the target (a unique key over a value someone wrote there twice by hand), plain `--exec`
/// refuses with the target's error, `-f` releases the lock anyway and says why; the shards
/// go on and the merged table ends equal to the union of the shards.
#[tokio::test(flavor = "multi_thread")]
async fn unlock_force_remove_releases_a_lock_whose_ddl_fails() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.o1 (id INT PRIMARY KEY, v INT); \
         CREATE TABLE s.o2 (id INT PRIMARY KEY, v INT); \
         INSERT INTO s.o1 VALUES (1, 1); INSERT INTO s.o2 VALUES (2, 2)",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let yaml = task_yaml("fr", "all", "src1", &dst, &["s"])
        .replacen("task-mode: all\n", "task-mode: all\nshard-mode: pessimistic\n", 1)
        .replace(
            "    block-allow-list: sel\n",
            "    block-allow-list: sel\n    route-rules: [merge]\n",
        )
        + "routes:\n  merge:\n    schema-pattern: s\n    table-pattern: o*\n    target-schema: m\n    target-table: o\n";
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "fr", &src).await;
    dst.exec("INSERT INTO m.o VALUES (99, 1)").await;
    src.exec("ALTER TABLE s.o1 ADD UNIQUE KEY uv (v); INSERT INTO s.o1 VALUES (10, 10)")
        .await;
    wait_for("the lock", Duration::from_secs(30), || {
        dm.ctl_ok(&["shard-ddl-lock", "fr"]).contains("m.o")
    })
    .await;
    let (ok, out) = dm.ctl(&["shard-ddl-lock", "unlock", "fr", "m.o", "--exec"]);
    assert!(!ok && out.contains("Duplicate entry"), "{out}");
    let out = dm.ctl_ok(&[
        "-o",
        "json",
        "shard-ddl-lock",
        "unlock",
        "fr",
        "m.o",
        "--exec",
        "-f",
    ]);
    assert!(
        out.contains("exec_error") && out.contains("Duplicate entry"),
        "{out}"
    );
    dst.exec("DELETE FROM m.o WHERE id = 99").await;
    src.exec("ALTER TABLE s.o2 ADD UNIQUE KEY uv (v); INSERT INTO s.o2 VALUES (20, 20)")
        .await;
    wait_caught_up(&dm, "fr", &src).await;
    let want = {
        let mut c = src.conn().await;
        let mut r: Vec<(i32, i32)> = mysql_async::prelude::Queryable::query(
            &mut c,
            "SELECT id, v FROM s.o1 UNION ALL SELECT id, v FROM s.o2 ORDER BY id",
        )
        .await
        .unwrap();
        r.sort();
        r
    };
    let mut c = dst.conn().await;
    let got: Vec<(i32, i32)> =
        mysql_async::prelude::Queryable::query(&mut c, "SELECT id, v FROM m.o ORDER BY id")
            .await
            .unwrap();
    assert_eq!(got, want);
}

/// TiDB DM's `safe-mode-duration`: after the incremental phase starts, changes are applied in
/// safe mode for that long, whatever dm's own window says: a row the target got by other means
/// (here inserted by hand) is replaced by the source's insert instead of pausing the task.
#[tokio::test(flavor = "multi_thread")]
async fn safe_mode_duration_replays_idempotently_for_that_long_after_the_start() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    let table = "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(20))";
    src.exec(table).await;
    dst.exec(table).await;
    dst.exec("INSERT INTO s.t VALUES (5, 'by hand')").await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let task = task_tuned(
        "sm",
        "incremental",
        &dst,
        &["s"],
        &[],
        &["safe-mode-duration: 10m"],
    );
    let tf = dm.file("task.yaml", &task);
    let answer = dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    assert!(
        !answer.contains("safe-mode-duration"),
        "taken, not left out: {answer}"
    );
    wait_caught_up(&dm, "sm", &src).await;
    src.exec("INSERT INTO s.t VALUES (4, 'a'), (5, 'from source'), (6, 'b')")
        .await;
    wait_caught_up(&dm, "sm", &src).await;
    assert_same(&src, &dst, &["s"]).await;
}

/// `task-mode: dump` without a lock (`consistency: none`) under a writer: each table is read in
/// a snapshot of its own, bracketed by the position read before it (widened by a failpoint),
/// and the one read after it. `load&sync` of the files replicates from the lowest position in
/// safe mode up to the highest and ends equal.
#[tokio::test(flavor = "multi_thread")]
async fn a_dump_without_a_lock_under_a_writer_loads_and_syncs_equal() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s; USE s; \
         CREATE TABLE s.a (id INT PRIMARY KEY, v INT, u INT, UNIQUE KEY (u)); \
         CREATE TABLE s.b (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO s.a SELECT seq, seq, seq FROM seq_1_to_5000; \
         INSERT INTO s.b SELECT seq, CONCAT('b', seq) FROM seq_1_to_5000",
    )
    .await;
    let dump = DumpDir::new();
    let (dir, with_dir) = (dump.dir.clone(), |yaml| dump.task(yaml));
    let dm = Dm::start_with_failpoints("inside-bracket=300");
    dm.create_source("src1", &src);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (opts, stop) = (src.opts(), stop.clone());
        tokio::spawn(async move {
            let mut c = mysql_async::Conn::new(opts).await.unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let k = n % 5000 + 1;
                let sql = format!(
                    "INSERT INTO s.b VALUES ({}, 'new') ON DUPLICATE KEY UPDATE v = 'again'; \
                     UPDATE s.a SET v = v + 1 WHERE id = {k}; \
                     UPDATE s.a SET u = -u WHERE id = {}; DELETE FROM s.b WHERE id = {k}",
                    10_000 + n,
                    (n * 7) % 5000 + 1
                );
                mysql_async::prelude::Queryable::query_drop(&mut c, sql)
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let dump_task = with_dir(task_tuned(
        "dn",
        "dump",
        &dst,
        &["s"],
        &["threads: 2", "rows: 1000", "consistency: none"],
        &[],
    ));
    let tf = dm.file("dump.yaml", &dump_task);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_for("the dump finished", Duration::from_secs(120), || {
        dm.subtask("dn").is_some_and(|s| s["stage"] == "finished")
    })
    .await;
    let metadata = std::fs::read_to_string(dir.join("metadata")).unwrap();
    assert!(metadata.contains("dm safe mode until:"), "{metadata}");
    dm.ctl_ok(&["stop-task", "dn"]);
    let load = with_dir(task_yaml("dl", "load&sync", "src1", &dst, &["s"]));
    let tf = dm.file("load.yaml", &load);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    wait_caught_up(&dm, "dl", &src).await;
    assert_same(&src, &dst, &["s"]).await;
}

/// An incremental task from `meta` given as file and position only, with `enable-gtid`, on a
/// source whose binlog holds two GTID domains: after a restart dm resumes by the GTID set of
/// its checkpoint, which must hold every domain up to the start, not only those seen since.
/// A set missing a domain makes the source send that domain again from its first binlog:
/// old changes over newer rows, without an error.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_by_file_and_position_resumes_by_a_whole_gtid_set() {
    let src = MariaDb::start(1);
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         SET SESSION gtid_domain_id = 1; \
         INSERT INTO s.t VALUES (1, 'old'), (2, 'old'); UPDATE s.t SET v = 'mid' WHERE id = 1; \
         SET SESSION gtid_domain_id = 0; INSERT INTO s.t VALUES (3, 'old')",
    )
    .await;
    let at = src.master_pos().await;
    let dst = MariaDb::start(2);
    dump_into(&src, &dst);
    // After the start, domain 0 only: the reader never sees domain 1.
    src.exec("UPDATE s.t SET v = 'new' WHERE id IN (1, 2); DELETE FROM s.t WHERE id = 3")
        .await;
    let mut dm = Dm::start();
    dm.create_source("src1", &src);
    start_incremental_at(&dm, &dst, &at);
    wait_caught_up(&dm, "inc", &src).await;
    assert_same(&src, &dst, &["s"]).await;
    let gtid = dm.subtask("inc").unwrap()["position"].to_string();
    assert!(gtid.contains("1-1-"), "the position lacks domain 1: {gtid}");
    dm.kill9();
    dm.restart();
    src.exec("INSERT INTO s.t VALUES (4, 'after')").await;
    wait_caught_up(&dm, "inc", &src).await;
    let st = dm.subtask("inc").unwrap();
    assert_eq!(st["stage"], "running", "{st}");
    assert_same(&src, &dst, &["s"]).await;
}
