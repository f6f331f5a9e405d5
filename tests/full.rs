//! The full phase in chunks: every kind of key, writes racing the copy, kill -9 in the middle.
//! Every scenario ends with a row-by-row comparison.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn chunk_count(dst: &MariaDb, task: &str, table: &str) -> u64 {
    let mut c = dst.conn().await;
    c.query_first(format!(
        "SELECT COUNT(*) FROM dm_meta.{task}_chunk WHERE table_name = '{table}' AND binlog_pos IS NOT NULL"
    ))
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_kind_is_chunked_and_copied_exactly() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE kk; USE kk;
         CREATE TABLE ints (id BIGINT UNSIGNED PRIMARY KEY, v INT, KEY kv (v), UNIQUE KEY uv (v, id));
         INSERT INTO ints SELECT seq * 3, seq FROM seq_1_to_3000;
         INSERT INTO ints VALUES (18446744073709551615, 0), (0, 0);
         CREATE TABLE comp (a VARCHAR(20) NOT NULL, b INT NOT NULL, v INT, PRIMARY KEY (a, b), KEY vb (v, b), KEY va (v, a(5)))
           COLLATE utf8mb4_general_ci;
         INSERT INTO comp SELECT CONCAT(CHAR(65 + seq % 26), 'é', seq % 7), seq, seq FROM seq_1_to_3000;
         INSERT INTO comp VALUES ('zzz 😀', 1, 1), ('Zzz 😁', 2, 2), ('', 0, 0);
         CREATE TABLE str (k VARCHAR(40) PRIMARY KEY, v INT) COLLATE utf8mb4_unicode_ci;
         INSERT INTO str SELECT CONCAT(IF(seq % 2, 'Key', 'kEY'), LPAD(seq, 5, '0'), IF(seq % 3 = 0, ' ü', '')), seq
           FROM seq_1_to_3000;
         CREATE TABLE lat (k VARCHAR(20) CHARACTER SET latin1 PRIMARY KEY, v INT);
         INSERT INTO lat SELECT CONCAT('ñ', seq, 'Å'), seq FROM seq_1_to_2000;
         CREATE TABLE bin (k VARBINARY(16) PRIMARY KEY, v INT);
         INSERT INTO bin SELECT UNHEX(MD5(seq)), seq FROM seq_1_to_3000;
         INSERT INTO bin VALUES (X'', 0), (X'00', 1), (X'FFFFFFFF', 2);
         CREATE TABLE dt (at DATETIME(6) NOT NULL, n INT NOT NULL, v INT, UNIQUE KEY (at, n));
         INSERT INTO dt SELECT '2020-01-01' + INTERVAL seq MINUTE + INTERVAL seq MICROSECOND, seq % 3, seq FROM seq_1_to_3000;
         CREATE TABLE dec_key (d DECIMAL(30,10) PRIMARY KEY, v INT);
         INSERT INTO dec_key SELECT seq / 7, seq FROM seq_1_to_3000;
         CREATE TABLE nokey (a INT, b TEXT);
         INSERT INTO nokey SELECT seq % 10, 'dup' FROM seq_1_to_2000;
         CREATE TABLE empty (id INT PRIMARY KEY);
         CREATE TABLE en (e ENUM('x', 'y', 'z') PRIMARY KEY);
         INSERT INTO en VALUES ('z'), ('x');
         CREATE TABLE one (id INT PRIMARY KEY, v INT);
         INSERT INTO one VALUES (42, 1);
         ANALYZE TABLE ints, comp, str, lat, bin, dt, dec_key, nokey;",
    )
    .await;
    // A target that refuses LOAD DATA LOCAL gets multi-row INSERTs.
    dst.exec("SET GLOBAL local_infile = 0").await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let yaml = task_tuned(
        "kk",
        "full",
        &dst,
        &["kk"],
        &["rows: 400", "threads: 3"],
        &[],
    );
    let tf = dm.file("task.yaml", &yaml);
    let check = dm.ctl_ok(&["check-task", tf.to_str().unwrap()]);
    assert!(
        check.contains("`kk`.`en`") && check.contains("cannot split"),
        "check-task names the table it cannot split:\n{check}"
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    // Follows the task with progress bars until it finishes.
    let watched = dm.ctl_ok(&["query-status", "kk", "--watch"]);
    assert!(watched.contains("kk: finished"), "{watched}");
    assert_same(&src, &dst, &["kk"]).await;
    for t in ["ints", "comp", "str", "lat", "bin", "dt", "dec_key"] {
        let n = chunk_count(&dst, "kk", t).await;
        assert!(n >= 4, "{t}: {n} chunks");
    }
    for t in ["nokey", "empty", "one", "en"] {
        assert_eq!(chunk_count(&dst, "kk", t).await, 1, "{t}");
    }
    let st = dm.subtask("kk").unwrap();
    assert_eq!(st["tables_done"], 11, "{st}");
    assert!(dm.log().contains("refuses LOAD DATA LOCAL"), "{}", dm.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_during_the_chunked_copy_resumes_only_unfinished_chunks_under_writes() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE m; USE m;
         CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, s VARCHAR(100));
         INSERT INTO t SELECT seq, seq, REPEAT('x', 80) FROM seq_1_to_40000;
         CREATE TABLE u (a VARCHAR(10) NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b));
         INSERT INTO u SELECT CHAR(97 + seq % 20), seq FROM seq_1_to_20000;
         ANALYZE TABLE t, u;",
    )
    .await;
    let mut dm = Dm::start();
    dm.create_source("src1", &src);
    let yaml = task_tuned("mv", "all", &dst, &["m"], &["rows: 300", "threads: 2"], &[]);
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let stop = Arc::new(AtomicBool::new(false));
    let mover = spawn_mover(&src, stop.clone());

    let mut seen: BTreeMap<(String, u32), String> = BTreeMap::new();
    for at_least in [5, 60, 120] {
        loop {
            let done = done_chunks(&dst, "mv").await;
            if done.len() >= at_least {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        dm.kill9();
        let done = done_chunks(&dst, "mv").await;
        let total: u64 = {
            let mut c = dst.conn().await;
            c.query_first("SELECT COUNT(*) FROM dm_meta.mv_chunk")
                .await
                .unwrap()
                .unwrap()
        };
        assert!(
            (done.len() as u64) < total,
            "killed after the copy: {} of {total} chunks done",
            done.len()
        );
        eprintln!("killed with {} of {total} chunks done", done.len());
        // Chunks finished before are never copied again.
        for (k, at) in &seen {
            assert_eq!(done.get(k), Some(at), "chunk {k:?} was copied again");
        }
        seen = done;
        dm.restart();
    }
    wait_for("the incremental phase", Duration::from_secs(120), || {
        dm.subtask("mv").is_some_and(|s| {
            assert_ne!(s["stage"], "paused", "{s}");
            s["phase"] == "incremental"
        })
    })
    .await;
    let done = done_chunks(&dst, "mv").await;
    for (k, at) in &seen {
        assert_eq!(done.get(k), Some(at), "chunk {k:?} was copied again");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = mover.await.unwrap();
    wait_caught_up(&dm, "mv", &src).await;
    let rows = assert_same(&src, &dst, &["m"]).await;
    eprintln!("{writes} writes during the copy, {rows} rows compared");
    assert!(writes > 100);
}

/// Chunks are snapshots of different moments. Under a writer that moves unique secondary key
/// values, primary keys and rows across chunks, a value may sit in a row of an earlier chunk
/// and in another row of a later one: the later row replaces the earlier, whose change is
/// replayed from the binlog; the target ends equal. With `consistency: none` (dumpling's
/// name; dm's way on MySQL, where no lock-free snapshot position exists) no chunk has an exact
/// position, only the one read just before its snapshot: the binlog is replayed in safe mode
/// from the oldest of those to past the last chunk.
async fn chunks_end_equal_under_a_writer_with_unique_keys(consistency: &str, rows: u64) {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE b; USE b;
         CREATE TABLE t (id BIGINT PRIMARY KEY, u INT NOT NULL, v INT NOT NULL, UNIQUE KEY uu (u));
         INSERT INTO t SELECT seq, seq, 0 FROM seq_1_to_30000;",
    )
    .await;
    // Bracketed snapshots start 20 ms after their position is read: the writer's changes in
    // between are in the snapshot and in the binlog after the position.
    let dm = Dm::start_with_failpoints("inside-bracket=20");
    dm.create_source("src1", &src);
    let consistency = format!("consistency: {consistency}");
    let rows = format!("rows: {rows}");
    let yaml = task_tuned(
        "br",
        "all",
        &dst,
        &["b"],
        &[&rows, "threads: 1", &consistency],
        &[],
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_loop(&src, stop.clone(), |n| {
        let k = (n * 7919) % 30_000 + 1;
        match n % 7 {
            // A unique value moves: the row that had it before may be in another chunk.
            0 => format!("UPDATE IGNORE b.t SET u = (u + 7777) % 40000 WHERE id = {k}"),
            1 => format!("DELETE FROM b.t WHERE id = {}", (k * 3) % 30_000 + 1),
            // Deleted keys come back, in every chunk's range; new keys in the last one's.
            2 => format!(
                "INSERT IGNORE INTO b.t VALUES ({}, {}, {n})",
                (k * 3) % 30_000 + 1,
                1_000_000 + n
            ),
            5..=6 => format!(
                "INSERT INTO b.t VALUES ({}, {}, {n})",
                100_000 + n,
                2_000_000 + n
            ),
            3 => format!("UPDATE IGNORE b.t SET id = id + 1000000 WHERE id = {k}"),
            _ => format!(
                "UPDATE b.t SET v = v + 1 WHERE id = {}",
                (k * 7) % 30_000 + 1
            ),
        }
    });
    wait_for("the incremental phase", Duration::from_secs(120), || {
        dm.subtask("br").is_some_and(|s| {
            assert_ne!(s["stage"], "paused", "{s}");
            s["phase"] == "incremental"
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    wait_caught_up(&dm, "br", &src).await;
    let rows = assert_same(&src, &dst, &["b"]).await;
    eprintln!("{consistency}: {writes} writes during the copy, {rows} rows compared");
    assert!(writes > 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunk_snapshots_end_equal_under_a_writer_moving_unique_key_values() {
    chunks_end_equal_under_a_writer_with_unique_keys("auto", 500).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bracketed_chunk_snapshots_end_equal_under_a_writer_moving_unique_key_values() {
    // One chunk: its bracket is the last, and the writer's new rows land in it (safe mode
    // must last past the position read after the copy).
    chunks_end_equal_under_a_writer_with_unique_keys("none", 100_000).await;
}

/// Chunks stay near their size whatever the key's distribution: one outlier far away, keys
/// spread thinly, keys in two clusters, and the dense case that is cut without a scan. A
/// chunk with every row would be copied by one copier and resumed only from its start.
#[tokio::test(flavor = "multi_thread")]
async fn chunk_plans_hold_on_skewed_sparse_and_clustered_keys() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE sk; USE sk;
         CREATE TABLE outlier (id BIGINT PRIMARY KEY, v INT);
         INSERT INTO outlier SELECT seq, seq FROM seq_1_to_20000;
         INSERT INTO outlier VALUES (1000000000, 0);
         CREATE TABLE umax (id BIGINT UNSIGNED PRIMARY KEY, v INT);
         INSERT INTO umax SELECT seq, seq FROM seq_1_to_20000;
         INSERT INTO umax VALUES (18446744073709551615, 0);
         CREATE TABLE sparse (id INT PRIMARY KEY, v INT);
         INSERT INTO sparse SELECT seq * 1000, seq FROM seq_1_to_20000;
         CREATE TABLE clustered (id INT PRIMARY KEY, v INT);
         INSERT INTO clustered SELECT seq, seq FROM seq_1_to_10000;
         INSERT INTO clustered SELECT 500000000 + seq, seq FROM seq_1_to_10000;
         CREATE TABLE dense (id INT PRIMARY KEY, v INT);
         INSERT INTO dense SELECT seq * 2, seq FROM seq_1_to_20000;
         ANALYZE TABLE outlier, umax, sparse, clustered, dense;",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let yaml = task_tuned("sk", "full", &dst, &["sk"], &["rows: 2000"], &[]);
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let watched = dm.ctl_ok(&["query-status", "sk", "--watch"]);
    assert!(watched.contains("sk: finished"), "{watched}");
    assert_same(&src, &dst, &["sk"]).await;
    let mut c = dst.conn().await;
    let sizes: Vec<(String, u64, u64)> = c
        .query(
            "SELECT table_name, COUNT(*), MAX(row_count) FROM dm_meta.sk_chunk GROUP BY table_name",
        )
        .await
        .unwrap();
    assert_eq!(sizes.len(), 5, "{sizes:?}");
    for (table, chunks, largest) in sizes {
        // About 20000 rows in chunks of about 2000: none above twice that.
        assert!(
            chunks >= 8 && largest <= 4000,
            "{table}: {chunks} chunks, the largest {largest} rows"
        );
    }
}

/// The secondary indexes of every key of a table, as the server lists them (name, unique,
/// columns in order).
async fn indexes_of(db: &MariaDb, table: &str) -> Vec<(String, i64, String)> {
    let mut c = db.conn().await;
    c.query(format!(
        "SELECT INDEX_NAME, 1 - NON_UNIQUE, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX)
         FROM information_schema.STATISTICS WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) = '{table}'
         GROUP BY INDEX_NAME, NON_UNIQUE ORDER BY INDEX_NAME"
    ))
    .await
    .unwrap()
}

/// A table of several chunks is created without its non-unique secondary indexes, which are
/// built after its last chunk: query-status lists the table while they are built, and a kill
/// -9 then leaves the table without them and without its load record, so the restarted copy
/// compares the definitions again and builds them; the table ends equal, its indexes those of
/// the source.
#[tokio::test(flavor = "multi_thread")]
async fn indexes_built_after_the_data_show_in_the_status_and_survive_kill9() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE ix; USE ix;
         CREATE TABLE t (id BIGINT PRIMARY KEY, k INT NOT NULL, email VARCHAR(64) NOT NULL,
           note VARCHAR(20), KEY k (k), KEY email_k (email, k), UNIQUE KEY note (note));
         INSERT INTO t SELECT seq, seq % 97, CONCAT('u', seq % 1000, '@example.com'),
           IF(seq % 3 = 0, CONCAT('n', seq), NULL) FROM seq_1_to_5000;
         ANALYZE TABLE t;",
    )
    .await;
    let mut dm = Dm::start_with_failpoints("before-index-build=60000");
    dm.create_source("src1", &src);
    let yaml = task_tuned(
        "ix",
        "full",
        &dst,
        &["ix"],
        &["rows: 1000", "threads: 2"],
        &[],
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let mut listed = serde_json::Value::Null;
    wait_for(
        "the table listed while its indexes are built",
        Duration::from_secs(120),
        || {
            let st = dm.subtask("ix").unwrap_or_default();
            assert_ne!(st["stage"], "paused", "{st}");
            listed = st["tables"].clone();
            listed
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["indexes_building"] == 2))
        },
    )
    .await;
    let shown = &listed.as_array().unwrap()[0];
    assert_eq!(shown["table"], "`ix`.`t`", "{listed}");
    assert_eq!(shown["chunks_done"], shown["chunks_total"], "{listed}");
    let table = dm.ctl_ok(&["query-status", "ix"]);
    assert!(table.contains("building 2"), "{table}");
    // Only the unique key and the primary key so far.
    let before = indexes_of(&dst, "ix.t").await;
    assert_eq!(
        before.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(),
        ["note", "PRIMARY"],
        "{before:?}"
    );
    dm.kill9();
    dm.env.clear();
    dm.restart();
    wait_for("the full phase to finish", Duration::from_secs(120), || {
        dm.subtask("ix").is_some_and(|s| {
            assert_ne!(s["stage"], "paused", "{s}");
            s["stage"] == "finished"
        })
    })
    .await;
    assert_eq!(
        indexes_of(&dst, "ix.t").await,
        indexes_of(&src, "ix.t").await
    );
    assert_eq!(assert_same(&src, &dst, &["ix"]).await, 5000);
    dm.kill9();
}
