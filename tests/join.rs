//! Tables added to a running task (`update-task` with a wider block-allow list) join it
//! without stopping it: copied chunk by chunk and caught up beside the running stream, then
//! handed over to it. Writers never stop; a kill -9 in the middle of the copy resumes with
//! the chunks not done; the end is compared row by row.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Task `jn` on `shop`, taking `tables` only, 5000-row chunks.
fn task(dst: &MariaDb, tables: &[&str]) -> String {
    let y = task_tuned(
        "jn",
        "all",
        dst,
        &["shop"],
        &["rows: 5000", "threads: 2"],
        &[],
    );
    let list: String = tables
        .iter()
        .map(|t| format!("      - db-name: shop\n        tbl-name: {t}\n"))
        .collect();
    y.replace(
        "    do-dbs: [\"shop\"]\n",
        &format!("    do-tables:\n{list}"),
    )
}

async fn sum_a(db: &MariaDb) -> i64 {
    let mut c = db.conn().await;
    c.query_first("SELECT CAST(COALESCE(SUM(v), 0) AS SIGNED) FROM shop.a")
        .await
        .unwrap()
        .unwrap_or(0)
}

/// The chunks of `b` done so far (chunk -> finished_at).
async fn done_b(dst: &MariaDb) -> std::collections::BTreeMap<u32, String> {
    done_chunks(dst, "jn")
        .await
        .into_iter()
        .filter(|((t, _), _)| t == "b")
        .map(|((_, n), at)| (n, at))
        .collect()
}

/// Database `shop` on `src` with table `a` (100 rows), then the statements of `more`.
async fn shop(src: &MariaDb, more: &str) {
    src.exec(&format!(
        "CREATE DATABASE shop; USE shop;
         CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO a SELECT seq, 0 FROM seq_1_to_100; {more}"
    ))
    .await;
}

fn not_paused(dm: &Dm) {
    if let Some(s) = dm.subtask("jn") {
        assert_ne!(s["stage"], "paused", "{s}\nlog:\n{}", dm.log());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_added_to_a_running_task_is_copied_and_joins_while_both_are_written() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    shop(
        &src,
        "CREATE TABLE b (id BIGINT PRIMARY KEY, u BIGINT NOT NULL, v INT NOT NULL,
                         s VARCHAR(40), UNIQUE KEY (u));
         INSERT INTO b SELECT seq, seq, seq, REPEAT('x', 30) FROM seq_1_to_200000;
         ANALYZE TABLE b;",
    )
    .await;
    // Each chunk waits a moment before its commit: the copy lasts long enough to be killed.
    let mut dm = Dm::start_with_failpoints("before-chunk-commit=150");
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task(&dst, &["a"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer_a = spawn_loop(&src, stop.clone(), |n| match n % 3 {
        0 => format!("INSERT INTO shop.a VALUES ({}, 1)", 1000 + n),
        _ => format!("UPDATE shop.a SET v = v + 1 WHERE id = {}", n % 100 + 1),
    });
    wait_for("the incremental phase", Duration::from_secs(120), || {
        dm.subtask("jn")
            .is_some_and(|s| s["phase"] == "incremental")
    })
    .await;
    assert!(done_b(&dst).await.is_empty(), "b is not in the task yet");

    // b changes heavily from now on: keys move across chunks, rows go and come at both
    // ends, unique values move.
    let writer_b = spawn_loop(&src, stop.clone(), |n| {
        let k = (n * 7919) % 200_000 + 1;
        match n % 6 {
            0 => format!("UPDATE shop.b SET id = id + 300000 WHERE id = {k}"),
            1 => format!("DELETE FROM shop.b WHERE id = {}", k + 1),
            2 => format!(
                "INSERT INTO shop.b VALUES ({}, {}, 0, 'low')",
                -(n as i64) - 1,
                10_000_000 + n
            ),
            3 => format!(
                "INSERT INTO shop.b VALUES ({}, {}, 0, 'high')",
                1_000_000 + n,
                20_000_000 + n
            ),
            4 => format!("UPDATE shop.b SET u = -u WHERE id = {}", k + 2),
            _ => format!(
                "UPDATE shop.b SET v = v + 1, s = 'upd' WHERE id = {}",
                k + 3
            ),
        }
    });
    let a_before = sum_a(&dst).await;
    let tf = dm.file("task.yaml", &task(&dst, &["a", "b"]));
    dm.ctl_ok(&["update-task", tf.to_str().unwrap()]);

    // The copy runs; a keeps applying meanwhile and the task never pauses.
    let (mut shown, mut noted) = (false, false);
    loop {
        not_paused(&dm);
        if let Some(s) = dm.subtask("jn") {
            shown |= s["tables"].to_string().contains("`b`");
        }
        let table = dm.ctl(&["query-status"]).1;
        noted |= table.contains("joining:") && table.contains("`shop`.`b`");
        if done_b(&dst).await.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(shown, "query-status shows the joining table's copy");
    assert!(noted, "the task table notes the joining table");
    wait_for("a applied during b's copy", Duration::from_secs(60), || {
        futures_now(sum_a(&dst)) > a_before
    })
    .await;
    dm.kill9();
    let done = done_b(&dst).await;
    eprintln!("killed with {} chunks of b done", done.len());
    dm.restart();

    // Chunks done before the kill are never copied again; b joins.
    wait_for("b to join", Duration::from_secs(180), || {
        not_paused(&dm);
        let now = futures_now(done_b(&dst));
        for (k, at) in &done {
            // The lane's records go once b joined.
            if !now.is_empty() {
                assert_eq!(now.get(k), Some(at), "chunk {k} of b was copied again");
            }
        }
        dm.log().contains("tables joined the running task")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (na, nb) = (writer_a.await.unwrap(), writer_b.await.unwrap());
    wait_caught_up(&dm, "jn", &src).await;
    let rows = assert_same(&src, &dst, &["shop"]).await;
    eprintln!("{na} writes to a, {nb} to b during the test; {rows} rows compared");
    assert!(nb > 100, "b was written during its copy: {nb}");
    let st = dm.subtask("jn").unwrap();
    assert_eq!(st["tables"], serde_json::json!([]), "{st}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resync_repairs_a_table_damaged_on_the_target_while_writes_go_on() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    shop(
        &src,
        "CREATE TABLE c (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(20));
         INSERT INTO c SELECT seq, seq, 'x' FROM seq_1_to_30000;",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task(&dst, &["a", "c"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "jn", &src).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_loop(&src, stop.clone(), |n| match n % 4 {
        0 => format!("INSERT INTO shop.c VALUES ({}, 0, 'new')", 100_000 + n),
        1 => format!("DELETE FROM shop.c WHERE id = {}", n * 13 % 30_000 + 1),
        2 => format!("UPDATE shop.a SET v = v + 1 WHERE id = {}", n % 100 + 1),
        _ => format!(
            "UPDATE shop.c SET v = v + 1 WHERE id = {}",
            n * 7 % 30_000 + 1
        ),
    });
    // Behind dm's back: rows gone, rows changed, a row that the source never had.
    dst.exec(
        "DELETE FROM shop.c WHERE id % 10 = 0; UPDATE shop.c SET s = 'bad' WHERE id % 7 = 0;
         INSERT INTO shop.c VALUES (-5, 0, 'stray');",
    )
    .await;
    // start-task on the running task points to update-task.
    let (ok, text) = dm.ctl(&["start-task", tf.to_str().unwrap()]);
    assert!(!ok && text.contains("update-task"), "{text}");
    let (ok, text) = dm.ctl(&["resync", "jn", "shop.nope"]);
    assert!(!ok && text.contains("does not take"), "{text}");
    dm.ctl_ok(&["resync", "jn", "shop.c"]);
    wait_for("c to join again", Duration::from_secs(120), || {
        not_paused(&dm);
        dm.log().contains("tables joined the running task")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    wait_caught_up(&dm, "jn", &src).await;
    let rows = assert_same(&src, &dst, &["shop"]).await;
    eprintln!("{writes} writes during the resync; {rows} rows compared");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_joining_table_altered_during_its_copy_joins_on_a_rotated_idle_source() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    shop(
        &src,
        "CREATE TABLE d (id INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO d SELECT seq, seq FROM seq_1_to_40000;",
    )
    .await;
    let dm = Dm::start_with_failpoints("before-chunk-commit=200");
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task(&dst, &["a"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "jn", &src).await;
    let tf = dm.file("task.yaml", &task(&dst, &["a", "d"]));
    dm.ctl_ok(&["update-task", tf.to_str().unwrap()]);
    // The table changes shape while it is copied, and rows go on changing.
    wait_for("d's copy to start", Duration::from_secs(60), || {
        futures_now(done_chunks(&dst, "jn"))
            .keys()
            .any(|(t, _)| t == "d")
    })
    .await;
    src.exec(
        "ALTER TABLE shop.d ADD COLUMN w VARCHAR(10) NOT NULL DEFAULT 'new';
         UPDATE shop.d SET v = -v, w = 'upd' WHERE id % 1000 = 0;
         DELETE FROM shop.d WHERE id % 999 = 0;
         UPDATE shop.a SET v = v + 1;",
    )
    .await;
    // The binlog rotates and then nothing is written: the lane must still hand over.
    src.exec("FLUSH BINARY LOGS").await;
    wait_for("d to join", Duration::from_secs(120), || {
        not_paused(&dm);
        dm.log().contains("tables joined the running task")
    })
    .await;
    // d is applied by the task itself now.
    src.exec("UPDATE shop.d SET w = 'after' WHERE id < 100")
        .await;
    wait_caught_up(&dm, "jn", &src).await;
    assert_same(&src, &dst, &["shop"]).await;
}
