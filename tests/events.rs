//! Nothing is passed over without a word: an event dm does not apply is filtered by a rule
//! the user wrote or pauses the task with a code, its position and the fix; what a user
//! gives `binlog replace` / `binlog inject` is run exactly.

mod common;

use common::*;

/// A source logging row changes as statements (STATEMENT, then MIXED): start-task refuses it,
/// with the override the first statement-logged DML pauses the task at its position, and the
/// user's replacements (an INSERT, an UPDATE), an injected UPDATE and a skipped unknown
/// statement leave the target exactly as asked.
#[tokio::test(flavor = "multi_thread")]
async fn statement_format_pauses_and_operators_run_dml() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "SET GLOBAL binlog_format = 'STATEMENT'; CREATE DATABASE shop; \
         CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO shop.t VALUES (0, 'zero')",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("st", "all", "src1", &dst, &["shop"]),
    );
    let (ok, text) = dm.ctl(&["start-task", tf.to_str().unwrap()]);
    assert!(!ok, "a STATEMENT source must be refused: {text}");
    assert!(
        text.contains("DM-CHECK-7101") && text.contains("binlog format") && text.contains("ROW"),
        "{text}"
    );
    assert!(dm.subtask("st").is_none(), "nothing started");
    dm.ctl_ok(&["start-task", "--skip-precheck", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "st", &src).await;

    // STATEMENT: one INSERT of three rows, logged as a statement.
    let insert = "INSERT INTO shop.t (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')";
    src.exec(insert).await;
    let at = src.master_pos().await;
    let err = wait_paused(&dm, "st").await;
    assert_eq!(err["code"], "DM-EVENT-6301", "{err}");
    assert_eq!(err["position"], at.as_str(), "{err}");
    assert!(
        err["hint"].as_str().unwrap().contains("binlog_format"),
        "{err}"
    );
    assert_eq!(dst.value::<u64>("SELECT COUNT(*) FROM shop.t").await, 1);
    // What cannot be run is refused before anything is recorded.
    for (bad, says) in [
        ("SELECT 1", "neither"),
        ("INSERT INTO t VALUES (9, 'x')", "database"),
        (
            "INSERT INTO shop.t VALUES (9, 'x'); DROP DATABASE shop",
            "statements",
        ),
    ] {
        let (ok, text) = dm.ctl(&["binlog", "replace", "st", bad]);
        assert!(!ok && text.contains(says), "{bad}: {text}");
    }
    dm.ctl_ok(&["binlog", "replace", "st", insert]);
    wait_caught_up(&dm, "st", &src).await;
    assert_same(&src, &dst, &["shop"]).await;

    // MIXED: a deterministic UPDATE is still logged as a statement.
    src.exec("SET GLOBAL binlog_format = 'MIXED'").await;
    let update = "UPDATE shop.t SET v = 'mixed' WHERE id = 2";
    src.exec(update).await;
    let at = src.master_pos().await;
    let err = wait_paused(&dm, "st").await;
    assert_eq!(err["code"], "DM-EVENT-6301", "{err}");
    assert_eq!(err["position"], at.as_str(), "{err}");
    dm.ctl_ok(&["binlog", "replace", "st", update]);
    wait_caught_up(&dm, "st", &src).await;
    assert_same(&src, &dst, &["shop"]).await;

    // ROW again. A statement dm cannot judge pauses with its own code; skip goes on.
    src.exec("SET GLOBAL binlog_format = 'ROW'").await;
    src.exec("CREATE SEQUENCE shop.s").await;
    let err = wait_paused(&dm, "st").await;
    assert_eq!(err["code"], "DM-EVENT-6302", "{err}");
    dm.ctl_ok(&["binlog", "skip", "st"]);
    wait_caught_up(&dm, "st", &src).await;

    // inject: an UPDATE the user wants before a transaction still to come.
    dm.ctl_ok(&["pause-task", "st"]);
    src.exec("INSERT INTO shop.t VALUES (5, 'e')").await;
    let at = src.master_pos().await;
    src.exec("INSERT INTO shop.t VALUES (6, 'f')").await;
    dm.ctl_ok(&[
        "binlog",
        "inject",
        "st",
        "-b",
        &at,
        "UPDATE shop.t SET v = CONCAT(v, '+injected') WHERE id = 1",
    ]);
    dm.ctl_ok(&["resume-task", "st"]);
    wait_caught_up(&dm, "st", &src).await;
    let v: String = dst.value("SELECT v FROM shop.t WHERE id = 1").await;
    assert_eq!(v, "a+injected", "the injected UPDATE ran exactly once");
    src.exec("UPDATE shop.t SET v = 'a+injected' WHERE id = 1")
        .await;
    wait_caught_up(&dm, "st", &src).await;
    assert_same(&src, &dst, &["shop"]).await;
}

/// A subtask that stops without a pause comes back by itself: its apply session is killed
/// and its apply lock held elsewhere, so it loses the lock (`LeaseLost`) while the source is
/// written. query-status shows stage `error` with the reason meanwhile; the worker restarts
/// it from its checkpoint and the target ends equal.
#[tokio::test(flavor = "multi_thread")]
async fn a_subtask_that_stops_without_a_pause_is_restarted() {
    use mysql_async::prelude::Queryable;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE h; CREATE TABLE h.t (id INT PRIMARY KEY, v INT)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file(
        "task.yaml",
        &task_tuned("heal", "all", &dst, &["h"], &[], &["worker-count: 1"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "heal", &src).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_loop(&src, stop.clone(), |n| {
        format!("INSERT INTO h.t VALUES ({n}, {n})")
    });

    // Take the apply worker's lock from it: end its session, hold the lock here.
    let meta = dm_core::checkpoint::MetaTables::new("dm_meta", "heal");
    let lock = dm_core::session_lock::lock_name(&meta, "src1", 0);
    let mut holder = dst.conn().await;
    let id: Option<u64> = holder
        .exec_first("SELECT IS_USED_LOCK(?)", (&lock,))
        .await
        .unwrap();
    let id = id.expect("the apply worker holds its lock");
    holder.query_drop(format!("KILL {id}")).await.unwrap();
    let got: Option<i64> = holder
        .exec_first("SELECT GET_LOCK(?, 10)", (&lock,))
        .await
        .unwrap();
    assert_eq!(got, Some(1));

    // Lock lost (after its 5 s wait): stage `error`, then restarted (ending this session).
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen.is_empty() {
        let view = api_client(&dm.addr).get_task("heal").await.unwrap();
        let body = serde_json::to_string(&view).unwrap();
        if body.contains("DM-TASK-8002") && body.contains("\"error\"") {
            seen = body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error stage shown:\n{}",
            dm.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        seen.contains("DM-CLUSTER-2101"),
        "the reason is shown: {seen}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let rows = writer.await.unwrap();
    assert!(rows > 0);
    wait_caught_up(&dm, "heal", &src).await;
    assert_same(&src, &dst, &["h"]).await;
    assert!(
        dm.log().contains("subtask stopped without a pause"),
        "{}",
        dm.log()
    );
    drop(holder);
}

/// Under a 4-writer load a row the target rejects (a CHECK only the target has) fails a
/// batch of many source transactions: dm narrows it down to the one at fault, pauses with
/// its position, and `binlog skip` without `-b` skips exactly that transaction.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_row_under_load_pauses_at_its_own_transaction() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE n; CREATE TABLE n.t (id INT PRIMARY KEY, v INT)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("nar", "all", "src1", &dst, &["n"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "nar", &src).await;
    dst.exec("ALTER TABLE n.t ADD CONSTRAINT no666 CHECK (v <> 666)")
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            spawn_loop(&src, stop.clone(), move |n| {
                let id = w * 100_000 + n;
                format!(
                    "INSERT INTO n.t VALUES ({id}, {}); UPDATE n.t SET v = v + 1 WHERE id = {}",
                    n % 500,
                    w * 100_000 + n / 2
                )
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    src.exec(
        "BEGIN; INSERT INTO n.t VALUES (1000001, 1); INSERT INTO n.t VALUES (1000002, 666); COMMIT",
    )
    .await;
    let err = wait_paused(&dm, "nar").await;
    assert_eq!(err["code"], "DM-TARGET-4001", "{err}");
    assert!(err["position"].is_string(), "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("the source transaction ending at") && message.contains("666"),
        "{message}"
    );
    assert!(
        dm.log().contains("applying them one by one"),
        "the failing batch held several transactions"
    );
    dm.ctl_ok(&["binlog", "skip", "nar"]);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    wait_caught_up(&dm, "nar", &src).await;
    let sums = "SELECT CONCAT(COUNT(*), '/', SUM(id), '/', SUM(v)) FROM n.t WHERE id < 1000000";
    assert_eq!(
        src.value::<String>(sums).await,
        dst.value::<String>(sums).await,
        "every other transaction is applied"
    );
    // The rejected row is not there. Its transaction's other row went to another apply
    // worker, which may have committed it before the failure (transactions are split by
    // key for parallel apply, as in TiDB DM; docs/architecture.md says so): it may be there.
    assert_eq!(
        src.value::<u64>("SELECT COUNT(*) FROM n.t WHERE id > 1000000")
            .await,
        2
    );
    assert_eq!(
        dst.value::<u64>("SELECT COUNT(*) FROM n.t WHERE id = 1000002")
            .await,
        0
    );
    assert_eq!(
        dst.value::<u64>("SELECT COUNT(*) FROM n.t WHERE id > 1000002")
            .await,
        0
    );
}
