//! Big rows and big transactions against a target whose max_allowed_packet is 16 MB: 32 MB
//! LONGBLOB rows in the full phase, a 300 MB transaction and blob rows that only fit a
//! statement of their own in the incremental phase, and a 32 MB row change no statement can
//! carry to this target: the task pauses naming the row, and goes on once the target takes
//! bigger packets. dm's memory stays bounded by bytes all along.

mod common;

use common::*;
use mysql_async::prelude::Queryable;

const MB: u64 = 1 << 20;

/// (id, length, MD5) of every row of `table`: the rows compared one by one without
/// moving every blob into the test.
async fn digests(db: &MariaDb, table: &str) -> Vec<(i64, u64, String)> {
    let mut c = db.conn().await;
    c.query(format!(
        "SELECT id, LENGTH(b), MD5(b) FROM {table} ORDER BY id"
    ))
    .await
    .unwrap()
}

async fn assert_same_rows(src: &MariaDb, dst: &MariaDb, tables: &[&str]) {
    for t in tables {
        let (a, b) = (digests(src, t).await, digests(dst, t).await);
        for (ra, rb) in a.iter().zip(&b) {
            assert_eq!(ra, rb, "{t}: a row differs");
        }
        assert_eq!(a.len(), b.len(), "{t}: row counts differ");
    }
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kb * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn big_rows_and_a_300_mb_transaction_reach_a_16_mb_packet_target() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    // The source takes the big rows; the target keeps MariaDB's default of 16 MB.
    src.exec("SET GLOBAL max_allowed_packet = 256 * 1024 * 1024")
        .await;
    let packet: u64 = dst.value("SELECT @@max_allowed_packet").await;
    assert_eq!(packet, 16 * MB);
    src.exec(
        "CREATE DATABASE big;
         CREATE TABLE big.t (id INT PRIMARY KEY, b LONGBLOB NOT NULL);
         CREATE TABLE big.m (id INT PRIMARY KEY, b MEDIUMBLOB NOT NULL);",
    )
    .await;
    // Full phase: three 32 MB rows among small ones.
    src.exec(
        "USE big;
         INSERT INTO big.t SELECT seq, REPEAT(CHAR(65 + seq), 100) FROM seq_1_to_20;
         UPDATE big.t SET b = REPEAT(CHAR(97 + id, 0, 10, 9, 92), 32 * 1024 * 1024 / 5)
         WHERE id IN (3, 10, 17);",
    )
    .await;

    let dm = Dm::start();
    dm.create_source("src1", &src);
    // One apply worker: every row goes into the same batches.
    let task = task_tuned("big", "all", &dst, &["big"], &[], &["worker-count: 1"]);
    let tf = dm.file("task.yaml", &task);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "big", &src).await;
    assert_same_rows(&src, &dst, &["big.t"]).await;

    // Incremental: one 300 MB transaction of 100 KB rows, then one where rows of 6 MB
    // follow 4 MB of others: a 6 MB row fits a statement of its own (hex doubles it), never
    // one with what came before it.
    src.exec(
        "USE big; INSERT INTO big.m SELECT seq, REPEAT(CHAR(48 + seq % 10), 100 * 1024)
         FROM seq_1_to_3000",
    )
    .await;
    let mut mixed = String::from("USE big; START TRANSACTION;");
    for i in 0..5 {
        mixed += &format!(
            "INSERT INTO big.m SELECT seq, REPEAT('m', 100 * 1024) FROM seq_{}_to_{};
             INSERT INTO big.t VALUES ({}, REPEAT(CHAR(48 + {i}), 6 * 1024 * 1024));",
            4000 + i * 100,
            4000 + i * 100 + 19,
            101 + i
        );
    }
    mixed += "COMMIT;";
    src.exec(&mixed).await;
    wait_caught_up(&dm, "big", &src).await;
    assert_same_rows(&src, &dst, &["big.t", "big.m"]).await;
    let rss = peak_rss(dm.pid().unwrap());
    eprintln!("dm's peak RSS: {} MB", rss / MB);
    assert!(rss < 300 * MB, "dm's peak RSS was {} MB", rss / MB);

    // A 32 MB row change: no statement of a 16 MB packet carries it. The task pauses
    // naming the row and what to do; nothing after it is applied meanwhile.
    src.exec("UPDATE big.t SET b = REPEAT('z', 32 * 1024 * 1024) WHERE id = 10")
        .await;
    src.exec("INSERT INTO big.t VALUES (200, 'after')").await;
    let err = wait_paused(&dm, "big").await;
    assert_eq!(err["code"], "DM-TARGET-4002", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("`big`.`t`") && message.contains("id = 10"),
        "{message}"
    );
    let after: Option<i64> = dst
        .conn()
        .await
        .query_first("SELECT COUNT(*) FROM big.t WHERE id = 200")
        .await
        .unwrap();
    assert_eq!(after, Some(0), "a change after the paused row was applied");

    // As the hint says: a bigger packet on the target, then resume.
    let hint = err["hint"].as_str().unwrap();
    let set = regex::Regex::new(r"SET GLOBAL max_allowed_packet = \d+")
        .unwrap()
        .find(hint)
        .unwrap_or_else(|| panic!("{hint}"));
    dst.exec(set.as_str()).await;
    dm.ctl_ok(&["resume-task", "big"]);
    wait_caught_up(&dm, "big", &src).await;
    assert_same_rows(&src, &dst, &["big.t", "big.m"]).await;
}
