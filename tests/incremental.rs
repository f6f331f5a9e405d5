//! The incremental phase under parallel apply: row order kept where it matters, kill -9 in
//! the middle of batches, DDL racing DML. Every scenario ends with a row-by-row comparison.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn task_with_syncer(name: &str, dst: &MariaDb, dbs: &[&str], settings: &[&str]) -> String {
    task_tuned(name, "all", dst, dbs, &[], settings)
}

/// A small deterministic random generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn start_task(dm: &Dm, src: &MariaDb, task: &str, yaml: &str) {
    dm.create_source("src1", src);
    let tf = dm.file("task.yaml", yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_for("the incremental phase", Duration::from_secs(60), || {
        dm.subtask(task)
            .is_some_and(|s| s["phase"] == "incremental")
    })
    .await;
}

/// One random transaction of the ordering workload: hot rows updated again and again,
/// primary keys changed and moved back, unique values swapped between rows, text keys that
/// differ only in case, rows without any key.
fn ordering_txn(r: &mut Rng, writer: u64) -> String {
    let a = r.below(20) + 1;
    let b = r.below(20) + 1;
    match r.below(9) {
        0 => format!("UPDATE p.hot SET n = n + 1, note = CONCAT('u', n) WHERE id = {a}"),
        1 => format!(
            "BEGIN; UPDATE p.hot SET id = id + 1000 WHERE id = {a}; \
             UPDATE p.hot SET n = n * 2 WHERE id = {a} + 1000; \
             UPDATE p.hot SET id = id - 1000 WHERE id = {a} + 1000; COMMIT"
        ),
        2 => format!(
            "BEGIN; DELETE FROM p.hot WHERE id = {a}; \
             INSERT INTO p.hot VALUES ({a}, {b}, 'again'); COMMIT"
        ),
        3 if a != b => format!(
            // Swap the unique values of two rows through a free value.
            "BEGIN; SELECT u INTO @ua FROM p.swap WHERE id = {a} FOR UPDATE; \
             SELECT u INTO @ub FROM p.swap WHERE id = {b} FOR UPDATE; \
             UPDATE p.swap SET u = -{writer} WHERE id = {a}; \
             UPDATE p.swap SET u = @ua, v = v + 1 WHERE id = {b}; \
             UPDATE p.swap SET u = @ub WHERE id = {a}; COMMIT"
        ),
        4 => {
            let names = ["abc", "ABC", "Abc", "xyz ", "XYZ"];
            let n = names[r.below(5) as usize];
            format!(
                "BEGIN; DELETE FROM p.names WHERE name = '{n}'; \
                 REPLACE INTO p.names VALUES ('{}', {b}); COMMIT",
                names[r.below(5) as usize]
            )
        }
        5 => format!("INSERT INTO p.nokey VALUES ({a}, {b})"),
        6 => format!("UPDATE p.nokey SET b = b + 1 WHERE a = {a} LIMIT 1"),
        // Values unique only by their first 3 characters.
        8 => format!(
            "BEGIN; DELETE FROM p.pre WHERE name LIKE 'k{}%'; \
             REPLACE INTO p.pre VALUES ({}, 'k{}{a}'); COMMIT",
            a % 5,
            writer * 1000 + b,
            a % 5
        ),
        _ => format!("DELETE FROM p.nokey WHERE a = {a} LIMIT 1"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_apply_keeps_the_order_that_matters() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE p; USE p;
         CREATE TABLE p.hot (id INT PRIMARY KEY, n BIGINT NOT NULL, note VARCHAR(30));
         CREATE TABLE p.swap (id INT PRIMARY KEY, u INT NOT NULL, v INT NOT NULL, UNIQUE KEY (u));
         CREATE TABLE p.names (name VARCHAR(20) PRIMARY KEY, n INT) COLLATE utf8mb4_general_ci;
         CREATE TABLE p.nokey (a INT, b INT);
         CREATE TABLE p.pre (id INT PRIMARY KEY, name VARCHAR(20), UNIQUE KEY (name(3)));
         INSERT INTO p.hot SELECT seq, 0, 'start' FROM seq_1_to_20;
         INSERT INTO p.swap SELECT seq, seq * 10, 0 FROM seq_1_to_20;",
    )
    .await;
    let mut dm = Dm::start();
    let yaml = task_with_syncer(
        "order",
        &dst,
        &["p"],
        &[
            "worker-count: 4",
            "batch: 16",
            "checkpoint-flush-interval: 1",
        ],
    );
    start_task(&dm, &src, "order", &yaml).await;

    // Two writers interleave their transactions in the binlog.
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let opts = src.opts();
        writers.push(tokio::spawn(async move {
            let mut c = mysql_async::Conn::new(opts).await.unwrap();
            let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ (w + 1));
            for _ in 0..1500 {
                let sql = ordering_txn(&mut r, w + 1);
                if let Err(e) = c.query_drop(&sql).await {
                    // Two writers may deadlock on the same rows; the loser is rolled back.
                    let _ = c.query_drop("ROLLBACK").await;
                    assert!(e.to_string().contains("Deadlock"), "{sql}: {e}");
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    wait_caught_up(&dm, "order", &src).await;
    let rows = assert_same(&src, &dst, &["p"]).await;
    let st = dm.subtask("order").unwrap();
    eprintln!("{rows} rows compared; status {st}");
    assert!(st["rows_applied"].as_u64().unwrap() > 3000);
    dm.kill9();
}

/// Inserts new rows and updates old ones until stopped; returns the statements run.
fn spawn_writer(src: &MariaDb, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    spawn_loop(src, stop, |n| {
        let id = 100_000 + n;
        format!(
            "BEGIN; INSERT INTO w.t VALUES ({id}, {n}, 'new'); \
             UPDATE w.t SET v = v + 1 WHERE id = {}; \
             INSERT INTO w.u VALUES ({id}, 'k{id}'); COMMIT",
            n % 5000 + 1
        )
    })
}

/// Source with `w.t` (5000 rows) and `w.u`, a target, and dm running `task` on `w` with these
/// syncer settings, in the incremental phase.
async fn writer_setup(task: &str, syncer: &[&str]) -> (MariaDb, MariaDb, Dm) {
    let dst = MariaDb::start(2);
    let yaml = task_with_syncer(task, &dst, &["w"], syncer);
    writer_setup_on(Dm::start(), task, dst, &yaml).await
}

/// `writer_setup` on a dm started by the caller (with failpoints, say).
async fn writer_setup_on(dm: Dm, task: &str, dst: MariaDb, yaml: &str) -> (MariaDb, MariaDb, Dm) {
    let src = MariaDb::start(1);
    src.exec(
        "CREATE DATABASE w; USE w;
         CREATE TABLE w.t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, s VARCHAR(10));
         CREATE TABLE w.u (id BIGINT PRIMARY KEY, k VARCHAR(20) NOT NULL, UNIQUE KEY (k));
         INSERT INTO w.t SELECT seq, 0, 'old' FROM seq_1_to_5000;",
    )
    .await;
    start_task(&dm, &src, task, yaml).await;
    (src, dst, dm)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_in_the_middle_of_batches_neither_loses_nor_duplicates() {
    // Checkpoints only when the source is quiet: the workers commit far past the
    // checkpoint, so a restart must rely on the high waters to replay in safe mode (plain
    // INSERTs replayed without it fail with duplicate keys and pause the task).
    let (src, dst, mut dm) = writer_setup(
        "k9",
        &[
            "worker-count: 3",
            "batch: 50",
            "checkpoint-flush-interval: 3600",
        ],
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&src, stop.clone());
    for round in 0..3u64 {
        wait_for("changes applied", Duration::from_secs(60), || {
            dm.subtask("k9")
                .is_some_and(|s| s["rows_applied"].as_u64().unwrap_or(0) > 300)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300 + 250 * round)).await;
        dm.kill9();
        dm.restart();
    }
    // Throughput shows while the writer runs.
    wait_for("rows/s in query-status", Duration::from_secs(30), || {
        dm.subtask("k9").is_some_and(|s| {
            s["rows_per_sec"].as_f64().unwrap_or(0.0) > 0.0
                && s["txns_per_sec"].as_f64().unwrap_or(0.0) > 0.0
                && s["queue_depth"].is_u64()
        })
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    wait_caught_up(&dm, "k9", &src).await;
    let rows = assert_same(&src, &dst, &["w"]).await;
    eprintln!("{writes} writer transactions, {rows} rows compared");
    assert!(
        dm.log().contains("safe mode until the high water"),
        "no restart replayed past its checkpoint:\n{}",
        dm.log()
    );
    // A run killed while it replays below the high water of an earlier run must not lower
    // it: the next run would apply plain INSERTs over rows that are there already.
    let until = regex::Regex::new(r"until\S*=\S*mysql-bin\.(\d+):(\d+)").unwrap();
    let clean = regex::Regex::new(r"\x1b\[[0-9;]*m")
        .unwrap()
        .replace_all(&dm.log(), "")
        .to_string();
    let marks: Vec<(u64, u64)> = until
        .captures_iter(&clean)
        .map(|c| (c[1].parse().unwrap(), c[2].parse().unwrap()))
        .collect();
    assert!(
        !marks.is_empty() && marks.windows(2).all(|w| w[0] <= w[1]),
        "the high water went back between restarts: {marks:?}"
    );
    dm.kill9();
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_while_dml_is_in_flight_applies_each_change_with_its_schema() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE d; USE d;
         CREATE TABLE d.t (id INT AUTO_INCREMENT PRIMARY KEY, a INT NOT NULL, b VARCHAR(20));
         INSERT INTO d.t (a, b) SELECT seq, 'x' FROM seq_1_to_200;",
    )
    .await;
    let mut dm = Dm::start();
    let yaml = task_with_syncer("ddl", &dst, &["d"], &["worker-count: 4", "batch: 20"]);
    start_task(&dm, &src, "ddl", &yaml).await;

    let stop = Arc::new(AtomicBool::new(false));
    let opts = src.opts();
    let flag = stop.clone();
    // Statements that stay valid whatever the DDL below did to the other columns.
    let writer = tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut r = Rng(42);
        let mut n = 0u64;
        while !flag.load(Ordering::Relaxed) {
            let id = r.below(400) + 1;
            let sql = match n % 3 {
                0 => format!("INSERT INTO d.t (a) VALUES ({n})"),
                1 => format!("UPDATE d.t SET a = a + 1 WHERE id = {id}"),
                _ => format!("DELETE FROM d.t WHERE id = {id}"),
            };
            c.query_drop(sql).await.unwrap();
            n += 1;
        }
        n
    });
    for ddl in [
        "ALTER TABLE d.t ADD COLUMN c INT NOT NULL DEFAULT 7 AFTER id",
        "ALTER TABLE d.t ADD COLUMN f VARCHAR(10) DEFAULT 'first' FIRST",
        "ALTER TABLE d.t DROP COLUMN b",
        "ALTER TABLE d.t MODIFY a BIGINT NOT NULL",
        "ALTER TABLE d.t ADD UNIQUE KEY ua (a, id)",
        "ALTER TABLE d.t CHANGE c c2 INT NOT NULL DEFAULT 8",
        "ALTER TABLE d.t DROP COLUMN f",
        // Logged as the DDL and its rows in one transaction.
        "CREATE TABLE d.snap SELECT id, a FROM d.t",
    ] {
        tokio::time::sleep(Duration::from_millis(400)).await;
        src.exec(ddl).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    wait_caught_up(&dm, "ddl", &src).await;
    let rows = assert_same(&src, &dst, &["d"]).await;
    eprintln!("{writes} writer statements, {rows} rows compared");
    assert!(writes > 100);
    dm.kill9();
}

#[tokio::test(flavor = "multi_thread")]
async fn file_positions_without_gtid_follow_rotation_restarts_and_kills() {
    let (mut src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE f; USE f;
         CREATE TABLE f.t (id INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO f.t SELECT seq, 0 FROM seq_1_to_100;",
    )
    .await;
    let mut dm = Dm::start();
    let sf = dm.file(
        "source.yaml",
        &source_yaml("src1", &src).replace("enable-gtid: true", "enable-gtid: false"),
    );
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    let tf = dm.file(
        "task.yaml",
        &task_with_syncer("fp", &dst, &["f"], &["worker-count: 2"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_for("the incremental phase", Duration::from_secs(60), || {
        dm.subtask("fp")
            .is_some_and(|s| s["phase"] == "incremental")
    })
    .await;
    let mut next = 1000;
    let mut write = |n: usize| {
        let sql: Vec<String> = (0..n)
            .map(|i| {
                next += 1;
                format!(
                    "INSERT INTO f.t VALUES ({next}, {i}); UPDATE f.t SET v = v + 1 WHERE id = {}",
                    i % 100 + 1
                )
            })
            .collect();
        sql.join(";")
    };
    // Rotation under way, then a source restart (a new binlog file), then a kill of dm.
    for _ in 0..3 {
        src.exec(&write(50)).await;
        src.exec("FLUSH BINARY LOGS").await;
    }
    src.stop();
    src.start_again();
    src.exec(&write(50)).await;
    dm.kill9();
    dm.restart();
    src.exec(&write(50)).await;
    src.exec("FLUSH BINARY LOGS").await;
    src.exec(&write(50)).await;
    wait_caught_up(&dm, "fp", &src).await;
    assert_same(&src, &dst, &["f"]).await;

    // The source rotates and stays quiet: the position follows it into the new file (only
    // framing events since), so the files before may go without loss: purged, then a restart
    // by file position reads from the new file.
    src.exec("FLUSH BINARY LOGS; FLUSH BINARY LOGS").await;
    let now = src.master_pos().await;
    wait_caught_up(&dm, "fp", &src).await;
    let file = now.split(':').next().unwrap();
    src.exec(&format!("PURGE BINARY LOGS TO '{file}'")).await;
    dm.kill9();
    dm.restart();
    src.exec(&write(20)).await;
    wait_caught_up(&dm, "fp", &src).await;
    assert_same(&src, &dst, &["f"]).await;
    dm.kill9();
}

#[tokio::test(flavor = "multi_thread")]
async fn big_transactions_cut_in_fragments_survive_kill9() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE b; CREATE TABLE b.t (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(50)); CREATE TABLE b.u (id INT PRIMARY KEY)",
    )
    .await;
    let mut dm = Dm::start();
    let yaml = task_with_syncer(
        "big",
        &dst,
        &["b"],
        &[
            "worker-count: 3",
            "batch: 500",
            "checkpoint-flush-interval: 3600",
        ],
    );
    start_task(&dm, &src, "big", &yaml).await;
    // A transaction after the full phase's safe-mode window.
    src.exec("INSERT INTO b.t VALUES (0, 0, 'first')").await;
    wait_caught_up(&dm, "big", &src).await;
    // A target session holds the gap of b.u: the worker that gets the big transaction's
    // first row stalls, the others commit their parts of it.
    let mut holder = dst.conn().await;
    holder
        .query_drop(
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; BEGIN; \
             SELECT * FROM b.u WHERE id = 1 FOR UPDATE",
        )
        .await
        .unwrap();
    // 60k rows in one transaction: fragments of 20k rows.
    src.exec(
        "USE b; BEGIN; INSERT INTO u VALUES (1); \
         INSERT INTO t SELECT seq, seq, REPEAT('x', 40) FROM seq_1_to_60000; COMMIT",
    )
    .await;
    let mut probe = dst.conn().await;
    let mut applied = 0i64;
    for _ in 0..100 {
        applied = probe
            .query_first("SELECT COUNT(*) FROM b.t")
            .await
            .unwrap()
            .unwrap();
        if applied > 10_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    dm.kill9();
    holder.query_drop("ROLLBACK").await.unwrap();
    assert!(
        applied > 1 && applied < 60_001,
        "the kill must land inside the transaction: {applied} rows in"
    );
    src.exec("UPDATE b.t SET v = v + 1").await;
    dm.restart();
    wait_caught_up(&dm, "big", &src).await;
    assert_same(&src, &dst, &["b"]).await;
    dm.kill9();
}

/// A backlog is routed several transactions per message to each worker (held back while
/// more wait to be read), their rows handed to the row filter plugin together. A checkpoint
/// saved in the middle of it covers the held ones: they must be filtered and in the target
/// before it, so dm killed right after it loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_after_a_checkpoint_past_held_transactions_loses_nothing() {
    let task = "held";
    let dst = MariaDb::start(2);
    let syncer = ["worker-count: 2", "checkpoint-flush-interval: 1"];
    let yaml = task_with_syncer(task, &dst, &["w"], &syncer).replacen(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n    plugins: [pass]\n",
        1,
    ) + &format!(
        "plugins:\n  pass:\n    path: {}\n",
        plugin_wasm("pass-through").display()
    );
    let (src, dst, mut dm) = writer_setup_on(
        Dm::start_with_failpoints("after-checkpoint-past-held=60000"),
        task,
        dst,
        &yaml,
    )
    .await;
    // Backlogs of single-statement transactions, written while the task is paused. Inserts
    // alone: a later change of a row would write its whole image again and hide the loss
    // of an earlier one. The dispatcher holds transactions only while more wait to be read:
    // a reader slowed down (a busy machine) may leave none held at the checkpoints of one
    // backlog, so another comes until a checkpoint passes held transactions.
    let passed = || dm.log().contains("after-checkpoint-past-held");
    for round in 0..5 {
        dm.ctl_ok(&["pause-task", task]);
        let first = 1 + round * 30_000;
        src.exec(&format!(
            "BEGIN NOT ATOMIC
               FOR i IN {first}..{} DO
                 INSERT INTO w.u VALUES (i, CONCAT('k', i));
                 INSERT INTO w.t VALUES (5000 + i, i, 'new');
               END FOR;
             END",
            first + 29_999
        ))
        .await;
        let end = src.master_pos().await;
        dm.ctl_ok(&["resume-task", task]);
        wait_for_or_show(
            "a checkpoint past held transactions, or the backlog applied",
            Duration::from_secs(120),
            || {
                passed()
                    || dm.subtask(task).is_some_and(|st| {
                        position_reached(st["position"].as_str().unwrap_or(""), &end)
                    })
            },
            || {
                let log: Vec<char> = dm.log().chars().collect();
                log[log.len().saturating_sub(4000)..].iter().collect()
            },
        )
        .await;
        if passed() {
            break;
        }
        eprintln!("backlog {round}: applied with no checkpoint past held transactions");
    }
    assert!(
        passed(),
        "no checkpoint passed held transactions in five backlogs"
    );
    dm.kill9();
    dm.env.clear();
    dm.restart();
    wait_caught_up(&dm, task, &src).await;
    assert_same(&src, &dst, &["w"]).await;
    dm.kill9();
}

/// The high water of apply worker 0: (seq, file index, position).
async fn high_water(dst: &MariaDb, task: &str) -> Option<(u64, u64, u64)> {
    let mut c = dst.conn().await;
    let row: Option<(u64, String, u64)> = c
        .query_first(format!(
            "SELECT seq, binlog_name, binlog_pos FROM dm_meta.{task}_high_water WHERE worker = 0"
        ))
        .await
        .ok()
        .flatten();
    row.map(|(seq, name, pos)| {
        let file = name.rsplit('.').next().unwrap().parse().unwrap();
        (seq, file, pos)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_while_it_replays_keeps_the_high_water_of_the_run_before() {
    // One apply worker, checkpoints only when the source is quiet (never, while the writer
    // runs): a restart replays everything since the full phase in safe mode.
    let (src, dst, mut dm) = writer_setup(
        "hw",
        &[
            "worker-count: 1",
            "batch: 20",
            "checkpoint-flush-interval: 3600",
        ],
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&src, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    dm.kill9();
    let (seq1, file1, pos1) = high_water(&dst, "hw").await.expect("run 1 committed");
    // Run 2: killed right after its first commit, long before its replay gets that far.
    dm.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (_, file2, pos2) = loop {
        match high_water(&dst, "hw").await {
            Some(hw) if hw.0 != seq1 => {
                dm.kill9();
                break hw;
            }
            _ => assert!(
                std::time::Instant::now() < deadline,
                "run 2 never committed"
            ),
        }
    };
    assert!(
        (file2, pos2) >= (file1, pos1),
        "run 2 lowered the high water from {file1}:{pos1} to {file2}:{pos2}"
    );
    // Run 3 replays in safe mode up to it: nothing fails, nothing is lost.
    dm.restart();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    wait_caught_up(&dm, "hw", &src).await;
    assert_same(&src, &dst, &["w"]).await;
}

/// After a lost connection a worker learns whether its COMMIT made it from the seq stored
/// with it: equal to its own only if it did. A run whose clock is behind the previous run's
/// (an NTP step, a restore) must not reuse a number that run stored, or a failed commit would
/// pass for done: each run's seq starts above the stored one.
#[tokio::test(flavor = "multi_thread")]
async fn a_workers_seq_stays_above_what_an_earlier_run_stored() {
    let (src, dst, mut dm) = writer_setup("sq", &["worker-count: 1"]).await;
    src.exec("UPDATE w.t SET v = 1 WHERE id = 1").await;
    wait_caught_up(&dm, "sq", &src).await;
    let before = held_locks_are_recorded(&dst, "sq").await;
    dm.kill9();
    // As if the previous run's clock had been far ahead of this one's.
    let ahead: u64 = 4_000_000_000_000_000;
    dst.exec(&format!("UPDATE dm_meta.sq_high_water SET seq = {ahead}"))
        .await;
    dm.restart();
    src.exec("UPDATE w.t SET v = 2 WHERE id = 1").await;
    wait_caught_up(&dm, "sq", &src).await;
    let (seq, _, _) = high_water(&dst, "sq").await.expect("a high water");
    assert!(seq > ahead, "seq {seq} is not above the stored {ahead}");
    // The new run's sessions are recorded in place of the old run's.
    let after = held_locks_are_recorded(&dst, "sq").await;
    assert!(
        after.iter().all(|a| !before.contains(a)),
        "{before:?} {after:?}"
    );
    assert_same(&src, &dst, &["w"]).await;
}

/// The sessions holding the task's locks, as recorded in `<task>_sessions` (what a new owner
/// ends on TiDB, whose IS_USED_LOCK does not name the holder): each is the session the server
/// says holds the lock, and the dispatcher's and the apply worker's are there.
async fn held_locks_are_recorded(dst: &MariaDb, task: &str) -> Vec<(String, u64)> {
    let rows: Vec<(String, u64, Option<u64>)> = dst
        .conn()
        .await
        .query(format!(
            "SELECT lock_name, connection_id, IS_USED_LOCK(lock_name) FROM dm_meta.{task}_sessions"
        ))
        .await
        .unwrap();
    let held: Vec<(String, u64)> = rows
        .iter()
        .filter(|(_, _, holder)| holder.is_some())
        .map(|(name, id, _)| (name.clone(), *id))
        .collect();
    for (name, id, holder) in &rows {
        assert!(
            holder.is_none() || *holder == Some(*id),
            "{name}: recorded {id}, held by {holder:?}"
        );
    }
    for worker in ["-0", "-1000000"] {
        assert!(held.iter().any(|(n, _)| n.ends_with(worker)), "{rows:?}");
    }
    held
}

/// TiDB DM's `syncers.safe-mode: true`: every change applies in safe mode, so an insert of a
/// key the target already holds (a "load a dump, replicate from a slightly earlier position"
/// workflow) replaces it instead of pausing on a duplicate key; a TiDB DM task file with its
/// deprecated fields loads, with a warning for each.
#[tokio::test(flavor = "multi_thread")]
async fn safe_mode_from_a_tidb_dm_task_file_replaces_rows_the_target_has() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(10))")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let yaml = task_tuned("sm", "all", &dst, &["s"], &[], &["safe-mode: true"]).replace(
        "block-allow-list:\n",
        "heartbeat-update-interval: 1\nenable-heartbeat: false\nblock-allow-list:\n",
    );
    let tf = dm.file("task.yaml", &yaml);
    let out = dm.ctl_ok(&["-o", "json", "start-task", tf.to_str().unwrap()]);
    assert!(
        out.contains("heartbeat-update-interval") && out.contains("no effect"),
        "{out}"
    );
    wait_caught_up(&dm, "sm", &src).await;
    // The target has the row before the source writes it.
    dst.exec("INSERT INTO s.t VALUES (1, 'old')").await;
    src.exec("INSERT INTO s.t VALUES (1, 'new'), (2, 'b'); UPDATE s.t SET v = 'c' WHERE id = 2")
        .await;
    wait_caught_up(&dm, "sm", &src).await;
    assert_same(&src, &dst, &["s"]).await;
}
