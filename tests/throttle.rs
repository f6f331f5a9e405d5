//! Throttling: a phase's `max-rows-per-second` keeps the rows it writes to that pace; `dm ctl
//! throttle` holds a running task, changes its pace and lets it go, without a restart; a
//! source busier than the syncer's `max-load` holds the task until it calms down. Nothing is
//! lost on the way: the test ends comparing source and target row by row.
//!
//! Paces are checked from one side only (never faster than the limit allows, with 10% to
//! spare): a slow machine only makes dm slower, so the checks cannot fail for that.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

async fn count(db: &MariaDb) -> i64 {
    let mut c = db.conn().await;
    c.query_first("SELECT COUNT(*) FROM th.t")
        .await
        .unwrap()
        .unwrap()
}

/// `n` sessions running `SELECT SLEEP(secs)` on `db`: they count in its Threads_running.
async fn busy(db: &MariaDb, n: usize, secs: u32) -> Vec<tokio::task::JoinHandle<()>> {
    let mut sleepers = Vec::new();
    for _ in 0..n {
        let mut c = db.conn().await;
        sleepers.push(tokio::spawn(async move {
            let _: Option<i64> = c
                .query_first(format!("SELECT SLEEP({secs})"))
                .await
                .unwrap();
        }));
    }
    sleepers
}

/// A source with `th.t` of 3000 rows, an empty target, and dm with the source created.
async fn source_of_3000_rows() -> (MariaDb, MariaDb, Dm) {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE th; USE th; CREATE TABLE t (id INT PRIMARY KEY, v INT);
         INSERT INTO t SELECT seq, seq FROM seq_1_to_3000;",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    (src, dst, dm)
}

fn throttle_of(dm: &Dm) -> (String, bool) {
    let s = dm.subtask("th").unwrap_or_default();
    (
        s["throttle"].as_str().unwrap_or_default().to_string(),
        s["throttled"].as_bool().unwrap_or(false),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_per_second_runtime_throttle_and_the_load_check() {
    let (src, dst, dm) = source_of_3000_rows().await;
    let task = task_tuned(
        "th",
        "all",
        &dst,
        &["th"],
        &["max-rows-per-second: 1000"],
        &[
            "max-rows-per-second: 1000",
            "max-load: Threads_running=9",
            "max-target-load: Threads_running=9",
        ],
    );
    let tf = dm.file("task.yaml", &task);

    // The full phase: 3000 rows at 1000 rows/s take 3 s at least (2.7 with 10% to spare).
    let started = Instant::now();
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_for("the limit in query-status", Duration::from_secs(60), || {
        throttle_of(&dm).0 == "1000 rows/s"
    })
    .await;
    wait_caught_up(&dm, "th", &src).await;
    let copy = started.elapsed();
    assert_eq!(count(&dst).await, 3000);
    eprintln!("3000 rows copied at 1000 rows/s in {copy:?}");
    assert!(
        copy >= Duration::from_millis(2700),
        "3000 rows copied in {copy:?}"
    );

    // `throttle on` holds the running task: rows written meanwhile wait, and go on `off`.
    dm.ctl_ok(&["throttle", "th", "on"]);
    wait_for("the hold in query-status", Duration::from_secs(30), || {
        let (text, held) = throttle_of(&dm);
        held && text.contains("throttle on")
    })
    .await;
    let metrics = metrics_of(&dm.addr).await;
    assert!(
        metrics.contains("dm_subtask_throttled{task=\"th\",source=\"src1\"} 1"),
        "{metrics}"
    );
    src.exec("USE th; INSERT INTO t SELECT seq, 0 FROM seq_3001_to_3200")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&dst).await, 3000, "rows went through a held task");
    // A new pace while held: still held.
    dm.ctl_ok(&["throttle", "th", "rate", "500"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&dst).await, 3000, "a rate lifted the hold");
    dm.ctl_ok(&["throttle", "th", "off"]);
    wait_caught_up(&dm, "th", &src).await;
    assert_eq!(count(&dst).await, 3200);

    // `rate N` at runtime: 1500 row changes at 500 rows/s take 3 s at least.
    dm.ctl_ok(&["throttle", "th", "rate", "500"]);
    wait_for(
        "the new pace in query-status",
        Duration::from_secs(30),
        || throttle_of(&dm).0 == "500 rows/s",
    )
    .await;
    let started = Instant::now();
    src.exec("UPDATE th.t SET v = v + 1 WHERE id <= 1500").await;
    wait_caught_up(&dm, "th", &src).await;
    let apply = started.elapsed();
    eprintln!("1500 changes applied at 500 rows/s in {apply:?}");
    assert!(
        apply >= Duration::from_millis(2700),
        "1500 changes applied in {apply:?}"
    );
    let (ok, text) = dm.ctl(&["throttle", "th", "rate"]);
    assert!(!ok && text.contains("rows per second"), "{text}");
    dm.ctl_ok(&["throttle", "th", "off"]);

    // The load checks: sessions running on the source, then on the target, push its
    // Threads_running above 9 (dm's own sessions stay below that); the task holds, says why,
    // and goes on once they end.
    for (db, side) in [(&src, "source"), (&dst, "target")] {
        let sleepers = busy(db, 12, 6).await;
        let says = format!("{side} Threads_running=");
        wait_for(
            "the load check to hold the task",
            Duration::from_secs(30),
            || {
                let (text, held) = throttle_of(&dm);
                held && text.contains(&says) && text.contains("above its limit 9")
            },
        )
        .await;
        src.exec("UPDATE th.t SET v = v + 1 WHERE id > 3000").await;
        for s in sleepers {
            s.await.unwrap();
        }
        wait_caught_up(&dm, "th", &src).await;
        let (text, held) = throttle_of(&dm);
        assert!(!held && text == "1000 rows/s", "{side}: {text}");
    }
    assert_same(&src, &dst, &["th"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_max_load_is_refused_with_its_field() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE th").await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let task = task_tuned(
        "th",
        "all",
        &dst,
        &["th"],
        &[],
        &["max-load: Threads_running"],
    );
    let tf = dm.file("task.yaml", &task);
    let (ok, text) = dm.ctl(&["start-task", tf.to_str().unwrap()]);
    assert!(
        !ok && text.contains("syncers.tuned.max-load") && text.contains("Threads_running=50"),
        "{text}"
    );
}

/// The copy holds too while the source is busier than `mydumpers.*.max-load`, keeping what it
/// copied so far, and finishes once the load falls.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_source_holds_the_copy_until_it_calms_down() {
    let (src, dst, dm) = source_of_3000_rows().await;
    // The copiers' own reads count in Threads_running: 2 of them, and the check.
    let task = task_tuned(
        "th",
        "full",
        &dst,
        &["th"],
        &[
            "threads: 2",
            "max-rows-per-second: 1000",
            "max-load: Threads_running=9",
        ],
        &[],
    );
    let tf = dm.file("task.yaml", &task);
    let sleepers = busy(&src, 12, 8).await;
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_for("the copy to be held", Duration::from_secs(30), || {
        let (text, held) = throttle_of(&dm);
        held && text.contains("source Threads_running=")
    })
    .await;
    let loaded = || dm.subtask("th").unwrap()["rows_loaded"].as_u64().unwrap();
    let before = loaded();
    tokio::time::sleep(Duration::from_secs(2)).await;
    if throttle_of(&dm).1 {
        assert_eq!(loaded(), before, "rows were copied while held");
    }
    for s in sleepers {
        s.await.unwrap();
    }
    let watched = dm.ctl_ok(&["query-status", "th", "--watch"]);
    assert!(watched.contains("th: finished"), "{watched}");
    assert_same(&src, &dst, &["th"]).await;
}
