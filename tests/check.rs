//! check-task against servers set up to break each precheck: every finding fails with its
//! fix, and a clean setup passes.

mod common;

use common::*;
use std::time::Duration;

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
    wait_for("the relay's disk report", Duration::from_secs(20), || {
        let (_, out) = dm.ctl(&["--output", "json", "check-task", tf.to_str().unwrap()]);
        let all: serde_json::Value =
            serde_json::from_str(&out[..out.rfind(']').map_or(0, |i| i + 1)]).unwrap_or_default();
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
    })
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

/// The source's binlog expiry against a paused task: check-task, query-status and `/metrics`
/// say when the source may purge the file the task resumes from, then that it is gone; the
/// fix they name (a new full copy with `--remove-meta`) brings the target equal again.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_task_is_told_before_and_after_the_source_purges_its_binlog() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "SET GLOBAL binlog_expire_logs_seconds = 7200;
         CREATE DATABASE r; CREATE TABLE r.t (id INT PRIMARY KEY, v INT);
         INSERT INTO r.t VALUES (1, 1), (2, 2);",
    )
    .await;
    let dm = Dm::start_with_failpoints("retention-every=300");
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("rt", "all", "src1", &dst, &["r"]));
    let check = |level: &str| -> serde_json::Value {
        let (_, out) = dm.ctl(&["--output", "json", "check-task", tf.to_str().unwrap()]);
        let all: serde_json::Value =
            serde_json::from_str(&out[..out.rfind(']').map_or(0, |i| i + 1)]).unwrap_or_default();
        let f = all
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["check"] == "binlog retention")
            .cloned()
            .unwrap_or_else(|| panic!("no binlog retention finding: {out}"));
        assert_eq!(f["level"], level, "{f}");
        f
    };
    // A new task: an expiry of 2 h is short for a full phase.
    let new = check("warn");
    assert!(new["message"].as_str().unwrap().contains("7200 s"), "{new}");
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    src.exec("INSERT INTO r.t VALUES (3, 3)").await;
    wait_caught_up(&dm, "rt", &src).await;
    assert_same(&src, &dst, &["r"]).await;
    // Running and caught up: it resumes from the file being written, which stays.
    let resumes = check("ok");
    assert!(
        resumes["message"]
            .as_str()
            .unwrap()
            .contains("the source keeps it"),
        "{resumes}"
    );
    let needed = src.master_pos().await;
    let needed = needed.split(':').next().unwrap().to_string();

    dm.ctl_ok(&["pause-task", "rt"]);
    src.exec("INSERT INTO r.t VALUES (4, 4); FLUSH BINARY LOGS; INSERT INTO r.t VALUES (5, 5); FLUSH BINARY LOGS")
        .await;
    let mut sub = serde_json::Value::Null;
    wait_for(
        "the paused task's retention warning",
        Duration::from_secs(30),
        || {
            sub = subtask_of(&dm, "rt", "src1").unwrap_or_default();
            sub["warnings"].as_array().into_iter().flatten().any(|w| {
                w.as_str()
                    .is_some_and(|w| w.starts_with("paused: the source may purge binlog file"))
            })
        },
    )
    .await;
    let r = &sub["binlog_retention"];
    assert_eq!(r["needed"], needed.as_str(), "{sub}");
    let left = r["purge_in_seconds"].as_u64().unwrap();
    assert!(left > 0 && left <= 7200, "{sub}");
    let soon = check("warn");
    assert!(
        soon["message"].as_str().unwrap().contains(&needed),
        "{soon}"
    );
    let metrics = metrics_of(&dm.addr).await;
    assert!(
        metrics.contains("dm_binlog_purge_in_seconds{task=\"rt\",source=\"src1\"}")
            && metrics.contains("dm_binlog_needed_purged{task=\"rt\",source=\"src1\"} 0"),
        "{metrics}"
    );

    // The source purges it: the task cannot resume, and everything says so with the fix.
    let current = src.master_pos().await;
    let current = current.split(':').next().unwrap();
    src.exec(&format!("PURGE BINARY LOGS TO '{current}'")).await;
    wait_for("the purged report", Duration::from_secs(30), || {
        sub = subtask_of(&dm, "rt", "src1").unwrap_or_default();
        sub["binlog_retention"]["purged"] == true
    })
    .await;
    let said = sub["warnings"].to_string();
    assert!(
        said.contains(&format!("no longer has binlog file {needed}"))
            && said.contains("--remove-meta")
            && !said.contains("paused: the source may purge"),
        "{sub}"
    );
    let gone = check("fail");
    assert!(
        gone["fix"].as_str().unwrap().contains("--remove-meta"),
        "{gone}"
    );
    let metrics = metrics_of(&dm.addr).await;
    assert!(
        metrics.contains("dm_binlog_needed_purged{task=\"rt\",source=\"src1\"} 1"),
        "{metrics}"
    );
    dm.ctl_ok(&["resume-task", "rt"]);
    let err = wait_paused(&dm, "rt").await;
    assert_eq!(err["code"], "DM-BINLOG-5001", "{err}");

    // The fix named: a new full copy.
    dm.ctl_ok(&["stop-task", "rt"]);
    dm.ctl_ok(&["start-task", "--remove-meta", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "rt", &src).await;
    assert_same(&src, &dst, &["r"]).await;
}

/// A task that resumes by GTID from a checkpoint of another server of the topology (its
/// file names are not this server's, as after a failover) is not told its binlog is gone
/// while the server still has the transactions after its GTID set, and it does resume; it is
/// told once the server purged some of them.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_resuming_by_gtid_is_judged_by_its_gtids() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE g; CREATE TABLE g.t (id INT PRIMARY KEY, v INT);
         INSERT INTO g.t VALUES (1, 1);",
    )
    .await;
    let dm = Dm::start_with_failpoints("retention-every=300");
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("rg", "all", "src1", &dst, &["g"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    src.exec("INSERT INTO g.t VALUES (2, 2)").await;
    wait_caught_up(&dm, "rg", &src).await;
    dm.ctl_ok(&["pause-task", "rg"]);
    let old_set: String = dst
        .value("SELECT binlog_gtid FROM dm_meta.rg_checkpoint")
        .await;
    let elsewhere = "UPDATE dm_meta.rg_checkpoint SET binlog_name = 'other-bin.000042'";
    dst.exec(elsewhere).await;
    let retention =
        || subtask_of(&dm, "rg", "src1").unwrap_or_default()["binlog_retention"].clone();
    wait_for(
        "the report of the other server's file",
        Duration::from_secs(30),
        || retention()["needed"] == "other-bin.000042",
    )
    .await;
    assert_eq!(retention()["purged"], false, "{}", retention());
    // And it resumes by GTID.
    src.exec("INSERT INTO g.t VALUES (3, 3); FLUSH BINARY LOGS; UPDATE g.t SET v = 9 WHERE id = 1")
        .await;
    dm.ctl_ok(&["resume-task", "rg"]);
    wait_caught_up(&dm, "rg", &src).await;
    assert_same(&src, &dst, &["g"]).await;

    // The server purges transactions after the old set: now it is gone.
    dm.ctl_ok(&["pause-task", "rg"]);
    src.exec("INSERT INTO g.t VALUES (4, 4); FLUSH BINARY LOGS")
        .await;
    let current = src.master_pos().await;
    src.exec(&format!(
        "PURGE BINARY LOGS TO '{}'",
        current.split(':').next().unwrap()
    ))
    .await;
    dst.exec(&format!(
        "{elsewhere}, binlog_gtid = '{}'",
        old_set.replace('\'', "''")
    ))
    .await;
    wait_for("the purged report", Duration::from_secs(30), || {
        retention()["purged"] == true
    })
    .await;
    dm.ctl_ok(&["stop-task", "rg"]);
    dm.ctl_ok(&["start-task", "--remove-meta", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "rg", &src).await;
    assert_same(&src, &dst, &["g"]).await;
}
