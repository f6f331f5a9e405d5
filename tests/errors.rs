//! Bad input gets a clear error that names the place and the fix, and never crashes dm.

mod common;

use common::*;
use dm_core::config::{SourceConfig, TaskConfig};
use std::time::Duration;

const GOOD_TASK: &str = "name: t1
task-mode: all
target-database:
  host: 127.0.0.1
  port: 3306
mysql-instances:
  - source-id: s1
    block-allow-list: sel
block-allow-list:
  sel:
    do-dbs: [\"shop\"]
";

fn task_error(text: &str) -> String {
    TaskConfig::parse("task.yaml", text)
        .unwrap_err()
        .to_string()
}

#[test]
fn config_mistakes_name_file_line_and_field() {
    TaskConfig::parse("task.yaml", GOOD_TASK).unwrap();

    let e = task_error(&GOOD_TASK.replace("task-mode: all", "task-mod: all"));
    assert!(e.starts_with("task.yaml:2:"), "{e}");
    assert!(e.contains("unknown field `task-mod`"), "{e}");
    let hint = TaskConfig::parse(
        "task.yaml",
        &GOOD_TASK.replace("task-mode: all", "task-mod: all"),
    )
    .unwrap_err()
    .hint();
    assert!(hint.contains("did you mean `task-mode`"), "{hint}");

    let e = task_error(&GOOD_TASK.replace("task-mode: all", "task-mode: sometimes"));
    assert!(
        e.contains("task-mode") && e.contains("sometimes") && e.starts_with("task.yaml:2:"),
        "{e}"
    );

    let e = task_error(&GOOD_TASK.replace("port: 3306", "port: many"));
    assert!(
        e.contains("target-database.port")
            && e.contains("invalid type")
            && e.starts_with("task.yaml:5:"),
        "{e}"
    );

    // A start position's file name reaches the file system (relay log, binlog-dir): a path
    // is refused where it is written.
    for bad in [
        "../../etc/passwd",
        "/var/log/syslog.1",
        "mysql-bin",
        ".hidden.000001",
    ] {
        let e = task_error(&GOOD_TASK.replace(
            "    block-allow-list: sel\n",
            &format!("    block-allow-list: sel\n    meta:\n      binlog-name: \"{bad}\"\n      binlog-pos: 4\n"),
        ));
        assert!(
            e.starts_with("task.yaml:") && e.contains("meta.binlog-name") && e.contains(bad),
            "{e}"
        );
    }
    TaskConfig::parse(
        "task.yaml",
        &GOOD_TASK.replace(
            "    block-allow-list: sel\n",
            "    block-allow-list: sel\n    meta:\n      binlog-name: mysql-bin.000042\n      binlog-pos: 4\n",
        ),
    )
    .unwrap();

    let e = task_error(&GOOD_TASK.replace("  host: 127.0.0.1\n", ""));
    assert!(e.contains("missing field `host`"), "{e}");

    let e = task_error(&GOOD_TASK.replace("block-allow-list: sel", "block-allow-list: nope"));
    assert!(
        e.contains("`nope` is not defined") && e.starts_with("task.yaml:8:"),
        "{e}"
    );

    let e = task_error(&GOOD_TASK.replace("\"shop\"", "\"~(\""));
    assert!(e.contains("pattern `~(`"), "{e}");

    let e = task_error(&GOOD_TASK.replace("name: t1", "name: bad name!"));
    assert!(e.contains("name:") && e.starts_with("task.yaml:1:"), "{e}");

    let e = task_error("name: [unclosed");
    assert!(e.starts_with("task.yaml:1:"), "{e}");

    let e = SourceConfig::parse(
        "source.yaml",
        "source-id: s1\nfrom:\n  host: h\n  prot: 1\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("from: unknown field `prot`")
            && e.to_string().starts_with("source.yaml:4:"),
        "{e}"
    );
    assert!(e.hint().contains("docs/config.md"));

    // Names that become paths: refused with the line, never joined to a directory.
    let source = |extra: &str| {
        SourceConfig::parse(
            "source.yaml",
            &format!("source-id: s1\nfrom:\n  host: h\n{extra}"),
        )
    };
    for bad in ["../../../../tmp/x.000001", "/tmp/x.000001", "x"] {
        let e = source(&format!("relay-binlog-name: \"{bad}\"\n")).unwrap_err();
        assert!(
            e.to_string().starts_with("source.yaml:4:")
                && e.to_string().contains("not a binlog file name"),
            "{bad}: {e}"
        );
    }
    // TiDB DM's "not set".
    assert_eq!(
        source("relay-binlog-name: ''\n").unwrap().relay_binlog_name,
        None
    );
    let e = SourceConfig::parse("source.yaml", "source-id: ../s1\nfrom:\n  host: h\n").unwrap_err();
    assert!(e.to_string().starts_with("source.yaml:1:"), "{e}");
}

#[test]
fn standalone_reports_a_bad_config_file_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dm.yaml");
    std::fs::write(&cfg, "master-addr: 127.0.0.1:1\nlog-levle: info\n").unwrap();
    let out = std::process::Command::new(dm_bin())
        .args(["standalone", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("dm.yaml:2:")
            && err.contains("unknown field `log-levle`")
            && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn ctl_says_when_the_master_is_unreachable() {
    let out = std::process::Command::new(dm_bin())
        .args([
            "ctl",
            "--master-addr",
            &format!("127.0.0.1:{}", free_port()),
            "query-status",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot reach any master") && err.contains("hint:"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_unsupported_ddl_pause_with_a_hint() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE USER 'dm'@'127.0.0.1' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'dm'@'127.0.0.1'",
    )
    .await;
    let dm = Dm::start();

    // A wrong source password is refused when the source is created.
    let bad = dm.file(
        "bad-source.yaml",
        &format!(
            "source-id: s1\nfrom:\n  host: 127.0.0.1\n  port: {}\n  user: dm\n  password: wrong\n",
            src.port
        ),
    );
    let (ok, text) = dm.ctl(&["operate-source", "create", bad.to_str().unwrap()]);
    assert!(
        !ok && text.contains("Access denied") && text.contains("check user and password"),
        "{text}"
    );

    let good = dm.file(
        "source.yaml",
        &format!(
            "source-id: s1\nfrom:\n  host: 127.0.0.1\n  port: {}\n  user: dm\n  password: secret\n",
            src.port
        ),
    );
    dm.ctl_ok(&["operate-source", "create", good.to_str().unwrap()]);
    let shown = dm.ctl_ok(&["operate-source", "show"]);
    assert!(
        !shown.contains("secret"),
        "passwords are never shown:\n{shown}"
    );

    // A wrong target password: start-task's precheck refuses it with the fix; started
    // anyway, the task pauses with the error and a hint.
    let task =
        task_yaml("e1", "all", "s1", &dst, &["e"]).replace("password: \"\"", "password: nope");
    let tf = dm.file("task-bad.yaml", &task);
    let (ok, text) = dm.ctl(&["start-task", tf.to_str().unwrap()]);
    assert!(
        !ok && text.contains("DM-CHECK-7101") && text.contains("check user and password"),
        "{text}"
    );
    dm.ctl_ok(&["start-task", "--skip-precheck", tf.to_str().unwrap()]);
    wait_for("the task to pause", Duration::from_secs(30), || {
        dm.subtask("e1").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    let st = dm.subtask("e1").unwrap();
    assert_eq!(st["last_error"]["code"], "DM-TARGET-4001", "{st}");
    assert!(
        st["last_error"]["hint"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{st}"
    );
    let table = dm.ctl_ok(&["query-status", "e1"]);
    assert!(table.contains("DM-TARGET-4001"), "{table}");
    dm.ctl_ok(&["stop-task", "e1"]);

    // A table DDL that cannot be parsed pauses the task, naming the statement and position.
    src.exec("CREATE DATABASE e; CREATE TABLE e.t (id INT PRIMARY KEY)")
        .await;
    let tf = dm.file("task.yaml", &task_yaml("e2", "all", "s1", &dst, &["e"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "e2", &src).await;
    src.exec("INSERT INTO e.t VALUES (1)").await;
    // An ALTER the parser does not know runs on the target, which tells the new definition.
    src.exec("ALTER TABLE e.t ENGINE=InnoDB, ADD COLUMN extra INT NOT NULL DEFAULT 5")
        .await;
    src.exec("INSERT INTO e.t VALUES (2, 6)").await;
    wait_caught_up(&dm, "e2", &src).await;
    assert_same_rows(&dst, "SELECT SUM(extra) FROM e.t", 11).await;
    src.exec("CREATE TABLE e.v (id INT PRIMARY KEY) WITH SYSTEM VERSIONING")
        .await;
    wait_for(
        "the task to pause on the DDL",
        Duration::from_secs(30),
        || dm.subtask("e2").is_some_and(|s| s["stage"] == "paused"),
    )
    .await;
    let st = dm.subtask("e2").unwrap();
    assert_eq!(st["last_error"]["code"], "DM-DDL-6001", "{st}");
    assert!(
        st["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("SYSTEM VERSIONING"),
        "{st}"
    );
    // The rows before the DDL are in, and dm is still serving.
    assert_same_rows(&dst, "SELECT COUNT(*) FROM e.t", 2).await;
    dm.ctl_ok(&["query-status"]);

    // `binlog skip` passes over the statement; what follows is applied.
    src.exec("INSERT INTO e.t VALUES (3, 1)").await;
    dm.ctl_ok(&["binlog", "skip", "e2"]);
    wait_caught_up(&dm, "e2", &src).await;
    assert_same_rows(&dst, "SELECT COUNT(*) FROM e.t", 3).await;
    assert!(
        dm.log().contains("transaction skipped (binlog skip)"),
        "{}",
        dm.log()
    );
    // Nothing is paused any more: a second skip has nothing to skip.
    let (ok, out) = dm.ctl(&["binlog", "skip", "e2"]);
    assert!(!ok && out.contains("no subtask paused"), "{out}");

    // A CREATE TABLE the parser cannot read runs on the target, which tells its definition.
    src.exec("CREATE TABLE e.w (id INT PRIMARY KEY, v INT) PARTITION BY HASH (id) PARTITIONS 2")
        .await;
    src.exec("INSERT INTO e.w VALUES (1, 10), (2, 20)").await;
    wait_caught_up(&dm, "e2", &src).await;
    assert_same_rows(&dst, "SELECT SUM(v) FROM e.w", 30).await;

    // `binlog replace` runs other statements instead of the one that stopped the task.
    src.exec("CREATE TABLE e.x (id INT PRIMARY KEY) WITH SYSTEM VERSIONING")
        .await;
    wait_for("the task to pause again", Duration::from_secs(30), || {
        dm.subtask("e2").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    dm.ctl_ok(&[
        "binlog",
        "replace",
        "e2",
        "CREATE TABLE e.x (id INT PRIMARY KEY, note VARCHAR(10) DEFAULT 'replaced')",
    ]);
    src.exec("INSERT INTO e.t VALUES (4, 2)").await;
    wait_caught_up(&dm, "e2", &src).await;
    assert_same_rows(&dst, "SELECT COUNT(*) FROM e.t", 4).await;
    assert_same_rows(
        &dst,
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'e' AND TABLE_NAME = 'x' AND COLUMN_NAME = 'note'",
        1,
    )
    .await;
}

async fn assert_same_rows(db: &MariaDb, sql: &str, want: u64) {
    use mysql_async::prelude::Queryable;
    let mut c = db.conn().await;
    let n: u64 = c.query_first(sql).await.unwrap().unwrap();
    assert_eq!(n, want, "{sql}");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_errors_retry_when_transient_and_pause_naming_the_statement_when_not() {
    use mysql_async::prelude::Queryable;
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE a; CREATE TABLE a.t (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO a.t VALUES (1, 0)")
        .await;
    let dm = Dm::start();
    dm.create_source("s1", &src);
    let tf = dm.file("task.yaml", &task_yaml("ap", "all", "s1", &dst, &["a"]));
    // Before dm connects: a session takes the global value when it starts, and the apply
    // sessions may start before or after the task is caught up.
    dst.exec("SET GLOBAL innodb_lock_wait_timeout = 1").await;
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "ap", &src).await;

    // Transient: a target session holds the row longer than the lock wait timeout.
    let mut holder = dst.conn().await;
    holder
        .query_drop("BEGIN; SELECT * FROM a.t WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    src.exec("UPDATE a.t SET v = 1 WHERE id = 1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    holder.query_drop("COMMIT").await.unwrap();
    wait_caught_up(&dm, "ap", &src).await;
    assert_same_rows(&dst, "SELECT v FROM a.t WHERE id = 1", 1).await;
    assert!(
        dm.log().contains("apply failed; trying again"),
        "{}",
        dm.log()
    );

    // Permanent: the target already has a row the source inserts now.
    dst.exec("INSERT INTO a.t VALUES (2, 99)").await;
    src.exec("INSERT INTO a.t VALUES (2, 2)").await;
    let at = src.master_pos().await;
    wait_for("the task to pause", Duration::from_secs(30), || {
        dm.subtask("ap").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    let st = dm.subtask("ap").unwrap();
    let msg = st["last_error"]["message"].as_str().unwrap().to_string();
    for part in ["Duplicate entry", "`a`.`t`", "INSERT INTO `a`.`t`", &at] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert_eq!(st["last_error"]["retryable"], false, "{st}");
    // Fixed on the target, resumed: the source's row wins and nothing else is lost.
    dst.exec("DELETE FROM a.t WHERE id = 2").await;
    src.exec("INSERT INTO a.t VALUES (3, 3)").await;
    dm.ctl_ok(&["resume-task", "ap"]);
    wait_caught_up(&dm, "ap", &src).await;
    assert_same(&src, &dst, &["a"]).await;
}

#[test]
fn completion_scripts_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(dm_bin())
            .args(["completion", shell])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        for cmd in [
            "start-task",
            "query-status",
            "shard-ddl-lock",
            "verify",
            "list-member",
        ] {
            assert!(text.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
}

/// A source file whose flavor is not the server's is refused when the source is created
/// (it paused later, in the full phase, on `gtid_executed`).
#[tokio::test(flavor = "multi_thread")]
async fn a_flavor_that_is_not_the_servers_is_refused() {
    let src = MariaDb::start(1);
    let dm = Dm::start();
    let sf = dm.file(
        "source.yaml",
        &source_yaml("src1", &src)
            .replace("enable-gtid: true\n", "enable-gtid: true\nflavor: mysql\n"),
    );
    let (ok, out) = dm.ctl(&["operate-source", "create", sf.to_str().unwrap()]);
    assert!(!ok && out.contains("flavor: mariadb"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_passwords_work_and_never_show() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    let secret = "Pa55-w0rd!x";
    for db in [&src, &dst] {
        db.exec(&format!(
            "CREATE USER 'dmu'@'127.0.0.1' IDENTIFIED BY '{secret}'; GRANT ALL ON *.* TO 'dmu'@'127.0.0.1'"
        ))
        .await;
    }
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY); INSERT INTO s.t VALUES (1), (2)",
    )
    .await;
    let dm = Dm::start();
    // The standalone made its key on its first start.
    let key = dm.dir.path().join("data/secret.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // From standard input (not in the process list); as an argument (dmctl's way) too.
    let mut child = std::process::Command::new(dm_bin())
        .args(["ctl", "encrypt", "--key-file", key.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{secret}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let enc = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(enc.starts_with("enc:") && !enc.contains(secret), "{enc}");
    let by_arg = dm.ctl_ok(&["encrypt", "--key-file", key.to_str().unwrap(), secret]);
    assert!(by_arg.trim().starts_with("enc:"), "{by_arg}");
    // The source file has the password encrypted, the task file in clear.
    let with_user = |db: &MariaDb, password: &str| {
        db.yaml()
            .replace("user: root", "user: dmu")
            .replace("password: \"\"", &format!("password: \"{password}\""))
    };
    let sf = dm.file(
        "source.yaml",
        &format!(
            "source-id: src1\nenable-gtid: true\nfrom:\n  {}\n",
            with_user(&src, &enc)
        ),
    );
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    let task = task_yaml("sec", "all", "src1", &dst, &["s"])
        .replace(&dst.yaml(), &with_user(&dst, secret));
    let tf = dm.file("task.yaml", &task);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "sec", &src).await;
    assert_same(&src, &dst, &["s"]).await;
    let shown =
        dm.ctl_ok(&["--output", "json", "query-status"]) + &dm.ctl_ok(&["operate-source", "show"]);
    assert!(!shown.contains(secret) && !dm.log().contains(secret));
    // Stored encrypted: no file of the data dir holds the password in clear.
    let mut dirs = vec![dm.dir.path().join("data")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(secret),
                    "{} holds the password in clear",
                    p.display()
                );
            }
        }
    }

    // A value encrypted under another key is refused with the file, line and fix.
    let bad = dm.file(
        "bad.yaml",
        &format!(
            "source-id: src2\nfrom:\n  host: 127.0.0.1\n  port: {}\n  user: dmu\n  password: \"enc:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n",
            src.port
        ),
    );
    let (ok, text) = dm.ctl(&["operate-source", "create", bad.to_str().unwrap()]);
    assert!(
        !ok && text.contains("bad.yaml:6") && text.contains("dm ctl encrypt"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn binlog_skip_at_a_position_before_the_task_gets_there() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE b; CREATE TABLE b.t (id INT PRIMARY KEY)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("bp", "all", "src1", &dst, &["b"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "bp", &src).await;
    dm.ctl_ok(&["pause-task", "bp"]);
    src.exec("INSERT INTO b.t VALUES (1)").await;
    let unwanted = src.master_pos().await;
    src.exec("INSERT INTO b.t VALUES (2)").await;
    // Recorded, reverted (TiDB DM's binlog revert), recorded again.
    dm.ctl_ok(&["binlog", "skip", "bp", "-b", &unwanted]);
    dm.ctl_ok(&["binlog", "revert", "bp", "-b", &unwanted]);
    let list = dm.ctl_ok(&["binlog", "list", "bp"]);
    assert!(!list.contains(&unwanted), "{list}");
    let (ok, text) = dm.ctl(&["binlog", "revert", "bp", "-b", &unwanted]);
    assert!(!ok && text.contains("no binlog operation"), "{text}");
    dm.ctl_ok(&["binlog", "skip", "bp", "-b", &unwanted]);
    let list = dm.ctl_ok(&["binlog", "list", "bp"]);
    assert!(list.contains(&unwanted) && list.contains("skip"), "{list}");
    let (ok, text) = dm.ctl(&["binlog", "skip", "bp", "-b", "nonsense"]);
    assert!(!ok && text.contains("file:pos"), "{text}");
    dm.ctl_ok(&["resume-task", "bp"]);
    wait_caught_up(&dm, "bp", &src).await;
    let mut c = dst.conn().await;
    let ids: Vec<i32> =
        mysql_async::prelude::Queryable::query(&mut c, "SELECT id FROM b.t ORDER BY id")
            .await
            .unwrap();
    assert_eq!(
        ids,
        vec![2],
        "the transaction at {unwanted} is skipped, the next one applied"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn binlog_schema_lists_and_fixes_the_tracked_schema() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE bs; CREATE TABLE bs.t (id INT PRIMARY KEY, v INT); CREATE TABLE bs.u (id INT PRIMARY KEY)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("sc", "all", "src1", &dst, &["bs"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "sc", &src).await;
    let list = dm.ctl_ok(&["binlog-schema", "list", "sc"]);
    assert!(
        list.contains("bs.t") && list.contains("v int") && list.contains("bs.u"),
        "{list}"
    );
    let sql = dm.file(
        "t.sql",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT, w VARCHAR(5))",
    );
    let (ok, text) = dm.ctl(&[
        "binlog-schema",
        "update",
        "sc",
        "bs.t",
        sql.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("pause task"), "{text}");

    // The schema drifted behind dm's back (a DDL it never saw): fix the tracked one.
    dm.ctl_ok(&["pause-task", "sc"]);
    wait_for("the pause", std::time::Duration::from_secs(30), || {
        dm.subtask("sc").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    src.exec("SET sql_log_bin = 0; ALTER TABLE bs.t ADD COLUMN w VARCHAR(5); SET sql_log_bin = 1")
        .await;
    dst.exec("ALTER TABLE bs.t ADD COLUMN w VARCHAR(5)").await;
    let after = dm.ctl_ok(&[
        "binlog-schema",
        "update",
        "sc",
        "bs.t",
        sql.to_str().unwrap(),
    ]);
    assert!(after.contains("w varchar"), "{after}");
    let after = dm.ctl_ok(&["binlog-schema", "delete", "sc", "bs.u"]);
    assert!(!after.contains("bs.u"), "{after}");
    dm.ctl_ok(&["resume-task", "sc"]);
    src.exec("INSERT INTO bs.t VALUES (1, 1, 'x'); INSERT INTO bs.u VALUES (7)")
        .await;
    wait_caught_up(&dm, "sc", &src).await;
    assert_same(&src, &dst, &["bs"]).await;

    // Drifted again: TiDB DM's --from-source / --from-target read the live definition.
    dm.ctl_ok(&["pause-task", "sc"]);
    wait_for("the pause", std::time::Duration::from_secs(30), || {
        dm.subtask("sc").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    src.exec("SET sql_log_bin = 0; ALTER TABLE bs.t ADD COLUMN z INT; SET sql_log_bin = 1")
        .await;
    dst.exec("ALTER TABLE bs.t ADD COLUMN z INT").await;
    let after = dm.ctl_ok(&["binlog-schema", "update", "sc", "bs.t", "--from-source"]);
    assert!(after.contains("z int"), "{after}");
    let after = dm.ctl_ok(&["binlog-schema", "update", "sc", "bs.t", "--from-target"]);
    assert!(after.contains("z int"), "{after}");
    dm.ctl_ok(&["resume-task", "sc"]);
    src.exec("INSERT INTO bs.t VALUES (2, 2, 'y', 2)").await;
    wait_caught_up(&dm, "sc", &src).await;
    assert_same(&src, &dst, &["bs"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purged_binlog_pauses_with_what_to_do_and_is_not_retried() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE pg; CREATE TABLE pg.t (id INT PRIMARY KEY)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("pg", "all", "src1", &dst, &["pg"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "pg", &src).await;
    dm.ctl_ok(&["pause-task", "pg"]);
    wait_for("the pause", std::time::Duration::from_secs(30), || {
        dm.subtask("pg").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    // What the task still needs is purged from the source.
    src.exec("INSERT INTO pg.t VALUES (1); FLUSH BINARY LOGS; INSERT INTO pg.t VALUES (2); FLUSH BINARY LOGS")
        .await;
    let current = src.master_pos().await;
    let file = current.split(':').next().unwrap().to_string();
    src.exec(&format!("PURGE BINARY LOGS TO '{file}'")).await;
    dm.ctl_ok(&["resume-task", "pg"]);
    let mut err = serde_json::Value::Null;
    wait_for(
        "the purged binlog to pause the task",
        std::time::Duration::from_secs(60),
        || {
            dm.subtask("pg").is_some_and(|s| {
                err = s["last_error"].clone();
                s["stage"] == "paused" && !err.is_null()
            })
        },
    )
    .await;
    assert_eq!(err["code"], "DM-BINLOG-5001", "{err}");
    assert_eq!(err["retryable"], false, "{err}");
    assert!(
        err["hint"].as_str().unwrap().contains("purged the binlog"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn binlog_inject_runs_what_a_failing_ddl_needs_then_the_ddl() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE i; CREATE TABLE i.t (id INT PRIMARY KEY, v INT); INSERT INTO i.t VALUES (1, 1)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("inj", "all", "src1", &dst, &["i"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "inj", &src).await;
    // Behind dm's back the target lost a table a source DDL alters.
    src.exec("CREATE TABLE i.u (id INT PRIMARY KEY)").await;
    wait_caught_up(&dm, "inj", &src).await;
    dst.exec("DROP TABLE i.u").await;
    src.exec("ALTER TABLE i.u ADD COLUMN c INT").await;
    let failing = src.master_pos().await;
    src.exec("INSERT INTO i.u VALUES (1, 10); INSERT INTO i.t VALUES (2, 2)")
        .await;
    let err = wait_paused(&dm, "inj").await;
    assert_eq!(err["position"], failing.as_str(), "{err}");
    let (ok, text) = dm.ctl(&["binlog", "inject", "inj"]);
    assert!(!ok, "statements are required: {text}");
    dm.ctl_ok(&[
        "binlog",
        "inject",
        "inj",
        "CREATE TABLE i.u (id INT PRIMARY KEY)",
    ]);
    wait_caught_up(&dm, "inj", &src).await;
    assert_same(&src, &dst, &["i"]).await;
    let list = dm.ctl_ok(&["binlog", "list", "inj"]);
    assert!(list.contains("inject") && list.contains(&failing), "{list}");
}
