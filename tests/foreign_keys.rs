//! `foreign-key-checks: true`: tables linked by foreign keys with cascading actions, written
//! all along (parents deleted and re-keyed under load, so cascades change rows the binlog
//! never names), copied in one snapshot, applied in order with the checks on, killed -9 in
//! both phases: child tables end equal row by row.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// customer <- orders <- item (ON DELETE CASCADE, orders also ON UPDATE CASCADE), customer <-
/// note (ON DELETE SET NULL, ON UPDATE CASCADE), and `other`, linked to nothing.
const SCHEMA: &str = "CREATE DATABASE fk; USE fk;
    CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);
    CREATE TABLE orders (id INT PRIMARY KEY, cid INT NOT NULL, note VARCHAR(40),
      KEY (cid), CONSTRAINT orders_customer FOREIGN KEY (cid) REFERENCES customer (id)
        ON DELETE CASCADE ON UPDATE CASCADE);
    CREATE TABLE item (id INT PRIMARY KEY, oid INT NOT NULL, qty INT NOT NULL,
      CONSTRAINT item_order FOREIGN KEY (oid) REFERENCES orders (id) ON DELETE CASCADE);
    CREATE TABLE note (id INT PRIMARY KEY, cid INT NULL, body VARCHAR(40),
      CONSTRAINT note_customer FOREIGN KEY (cid) REFERENCES customer (id)
        ON DELETE SET NULL ON UPDATE CASCADE);
    CREATE TABLE other (id INT PRIMARY KEY, v INT NOT NULL);
    INSERT INTO customer SELECT seq, CONCAT('c', seq) FROM seq_1_to_3000;
    INSERT INTO orders SELECT seq, (seq % 3000) + 1, 'o' FROM seq_1_to_9000;
    INSERT INTO item SELECT seq, (seq % 9000) + 1, seq % 7 FROM seq_1_to_18000;
    INSERT INTO note SELECT seq, (seq % 3000) + 1, 'n' FROM seq_1_to_3000;
    INSERT INTO other SELECT seq, 0 FROM seq_1_to_1000;";

/// Writes that make cascades: parents deleted (their orders, their orders' items go; their
/// notes lose their customer), parents re-keyed (their orders follow), new rows at every
/// level, children moved between parents.
fn workload(n: u64) -> String {
    let k = (n * 7919) % 3000 + 1;
    match n % 8 {
        0 => format!("INSERT INTO fk.customer VALUES ({}, 'new')", 100_000 + n),
        1 => format!(
            "INSERT INTO fk.orders SELECT {}, MAX(id), 'new' FROM fk.customer",
            100_000 + n
        ),
        2 => format!(
            "INSERT INTO fk.item SELECT {}, MAX(id), 1 FROM fk.orders",
            100_000 + n
        ),
        3 => format!("DELETE FROM fk.customer WHERE id = {k}"),
        4 => format!("UPDATE fk.customer SET id = id + 1000000 WHERE id = {}", k + 1),
        5 => format!(
            "UPDATE fk.orders SET cid = (SELECT MAX(id) FROM fk.customer), note = 'moved' WHERE id = {}",
            (n * 31) % 9000 + 1
        ),
        6 => format!(
            "INSERT INTO fk.note SELECT {}, MAX(id), 'new' FROM fk.customer",
            100_000 + n
        ),
        _ => format!("UPDATE fk.other SET v = v + 1 WHERE id = {}", n % 1000 + 1),
    }
}

fn task(dst: &MariaDb, chunk_rows: &str) -> String {
    let y = task_tuned(
        "fk",
        "all",
        dst,
        &["fk"],
        &[chunk_rows, "threads: 2"],
        &["worker-count: 4", "checkpoint-flush-interval: 30"],
    );
    format!("{y}foreign-key-checks: true\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn cascades_reach_the_target_exactly_through_kills_in_both_phases() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(SCHEMA).await;
    // Each chunk waits a moment before its commit: the copy of the linked tables lasts long
    // enough to be killed in the middle.
    let mut dm = Dm::start_with_failpoints("before-chunk-commit=100");
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task(&dst, "rows: 1000"));
    let checked = dm.ctl_ok(&["check-task", tf.to_str().unwrap()]);
    assert!(
        checked.contains("linked by foreign keys") && !checked.contains("cascading actions"),
        "{checked}"
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_loop(&src, stop.clone(), workload);

    // Killed while the linked group is half copied: copied again whole, in one snapshot.
    wait_for(
        "a few chunks of the linked tables",
        Duration::from_secs(120),
        || futures_now(done_chunks(&dst, "fk")).len() >= 4,
    )
    .await;
    dm.kill9();
    let done = done_chunks(&dst, "fk").await.len();
    // 3 + 9 + 18 + 3 chunks of linked tables, copied before `other`'s one.
    assert!(
        done < 33,
        "killed in the middle of the linked tables' copy: {done} done"
    );
    dm.restart();
    wait_for("the incremental phase", Duration::from_secs(240), || {
        if let Some(s) = dm.subtask("fk") {
            assert_ne!(s["stage"], "paused", "{s}\nlog:\n{}", dm.log());
            return s["phase"] == "incremental";
        }
        false
    })
    .await;
    let positions: std::collections::BTreeSet<String> = {
        let mut c = dst.conn().await;
        use mysql_async::prelude::Queryable;
        c.query(
            "SELECT CONCAT(binlog_name, ':', binlog_pos) FROM dm_meta.fk_load \
             WHERE table_name IN ('customer', 'orders', 'item', 'note')",
        )
        .await
        .unwrap()
        .into_iter()
        .collect()
    };
    assert_eq!(
        positions.len(),
        1,
        "linked tables copied at one position: {positions:?}"
    );

    // Killed twice while cascades are applied: the linked changes after the checkpoint that
    // were applied are not applied again (a second insert would fail on its key, a second
    // delete of a re-inserted row would lose it).
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        dm.kill9();
        dm.restart();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    wait_caught_up(&dm, "fk", &src).await;
    let rows = assert_same(&src, &dst, &["fk"]).await;
    eprintln!("{writes} writes; {rows} rows compared");
    assert!(writes > 500, "the source was written all along: {writes}");
    let orphans: i64 = dst
        .value("SELECT COUNT(*) FROM fk.orders o LEFT JOIN fk.customer c ON c.id = o.cid WHERE c.id IS NULL")
        .await;
    assert_eq!(orphans, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn linked_tables_are_refused_where_they_cannot_be_kept_exact() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(SCHEMA).await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    // A child in the task whose parent is not: check-task fails, naming the foreign key.
    let only_orders = task(&dst, "rows: 1000").replace(
        "    do-dbs: [\"fk\"]\n",
        "    do-tables:\n      - db-name: fk\n        tbl-name: orders\n",
    );
    let tf = dm.file("orders.yaml", &only_orders);
    let (ok, out) = dm.ctl(&["check-task", tf.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("orders_customer") && out.contains("add the referenced table"),
        "{out}"
    );
    // Safe mode with the checks on: refused when the file is read.
    let safe = task(&dst, "rows: 1000").replace("worker-count: 4", "safe-mode: true");
    let tf = dm.file("safe.yaml", &safe);
    let (ok, out) = dm.ctl(&["start-task", tf.to_str().unwrap()]);
    assert!(
        !ok && out.contains("safe-mode") && out.contains("cascade"),
        "{out}"
    );

    // Linked tables added to a running task: they would be copied apart from each other.
    let only_other = only_orders.replace("tbl-name: orders", "tbl-name: other");
    let tf = dm.file("other.yaml", &only_other);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "fk", &src).await;
    let tf = dm.file("all.yaml", &task(&dst, "rows: 1000"));
    dm.ctl_ok(&["update-task", tf.to_str().unwrap()]);
    let err = wait_paused(&dm, "fk").await.to_string();
    assert!(
        err.contains("cannot join the running task") && err.contains("start-task --remove-meta"),
        "{err}"
    );
}
