//! The relay log: the worker keeps the source's binlog on disk and subtasks read it from
//! there. Same results as reading the source directly, the relay files are the source's
//! binlog byte for byte, subtasks go on (and even start) while the source is down, pausing
//! the relay holds new events back, and purging keeps every file a task still needs.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Inserts, updates and deletes on `r.t` and `r.u` until stopped; rotates the source's
/// binlog now and then.
fn spawn_writer(src: &MariaDb, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    spawn_loop(src, stop, |n| {
        let id = 10_000 + n;
        let sql = match n % 4 {
            0 => format!(
                "BEGIN; INSERT INTO r.t (id, v, s) VALUES ({id}, {n}, 'w{n}'); \
                     INSERT INTO r.u VALUES ({id}, REPEAT('x', {})); COMMIT",
                n % 300
            ),
            1 => format!(
                "UPDATE r.t SET v = v + 1, s = 'u{n}' WHERE id = {}",
                n % 500
            ),
            2 => format!("DELETE FROM r.u WHERE id = {}", n % 700),
            _ => format!("UPDATE r.t SET id = id + 100000 WHERE id = {}", n % 900 + 1),
        };
        if n % 1500 == 1499 {
            format!("{sql}; FLUSH BINARY LOGS")
        } else {
            sql
        }
    })
}

async fn seed(src: &MariaDb, rows: u64) {
    src.exec(
        "CREATE DATABASE r; \
         CREATE TABLE r.t (id INT PRIMARY KEY, v BIGINT, s VARCHAR(40)); \
         CREATE TABLE r.u (id INT PRIMARY KEY, b TEXT)",
    )
    .await;
    let values: Vec<String> = (0..rows).map(|i| format!("({i}, {i}, 's{i}')")).collect();
    src.exec(&format!("INSERT INTO r.t VALUES {}", values.join(",")))
        .await;
    src.exec("INSERT INTO r.u SELECT id, s FROM r.t").await;
}

fn relay_source_yaml(id: &str, db: &MariaDb, relay: bool) -> String {
    format!("{}enable-relay: {relay}\n", source_yaml(id, db))
}

/// The source as `operate-source show --output json` reports it.
fn source_view(dm: &Dm, id: &str) -> Value {
    let text = dm.ctl_ok(&["--output", "json", "operate-source", "show"]);
    let all: Value = serde_json::from_str(&text).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["source_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no source {id} in {text}"))
}

fn relay_dir(dm: &Dm, source: &str) -> PathBuf {
    dm.dir.path().join("data/relay-log").join(source)
}

fn binlog_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mysql-bin.0"))
        .collect();
    names.sort();
    names
}

/// Offset after the format description event (its flags byte differs once the server
/// closes the file).
fn after_format_description(bytes: &[u8]) -> usize {
    4 + u32::from_le_bytes(bytes[13..17].try_into().unwrap()) as usize
}

const ANNOTATE_ROWS: u8 = 160;

/// (offset, type, bytes) of each whole event after the format description.
fn events(file: &[u8]) -> Vec<(usize, u8, &[u8])> {
    let mut at = after_format_description(file);
    let mut out = vec![];
    while at + 19 <= file.len() {
        let size = u32::from_le_bytes(file[at + 9..at + 13].try_into().unwrap()) as usize;
        if at + size > file.len() {
            break;
        }
        out.push((at, file[at + 4], &file[at..at + size]));
        at += size;
    }
    out
}

/// The end of the source's last transaction: after a rotation (or a restart) MariaDB writes a
/// binlog checkpoint event a moment later, after it, which no task position ever equals.
async fn last_txn_end(src: &MariaDb) -> String {
    let pos = src.master_pos().await;
    let file = pos.split(':').next().unwrap().to_string();
    let mut c = src.conn().await;
    let events: Vec<mysql_async::Row> = c
        .query(format!("SHOW BINLOG EVENTS IN '{file}'"))
        .await
        .unwrap();
    let end = events
        .into_iter()
        .filter(|e| {
            let kind: String = e.get(2).unwrap();
            let info: String = e.get(5).unwrap_or_default();
            kind == "Xid" || (kind == "Query" && !info.starts_with("BEGIN"))
        })
        .map(|e| e.get::<u64, _>(4).unwrap())
        .last()
        .expect("a transaction in the current binlog file");
    format!("{file}:{end}")
}

/// Waits until the task has applied everything the source has.
async fn wait_applied(dm: &Dm, task: &str, src: &MariaDb) {
    wait_position(dm, task, &last_txn_end(src).await).await
}

async fn wait_relay_at(dm: &Dm, id: &str, pos: &str) {
    wait_for(
        &format!("the relay of {id} to reach {pos}"),
        Duration::from_secs(60),
        || source_view(dm, id)["relay"]["position"] == pos,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_and_direct_reading_give_identical_results() {
    let (src, dst_relay, dst_direct) = (MariaDb::start(1), MariaDb::start(2), MariaDb::start(3));
    seed(&src, 3000).await;
    let dm = Dm::start();
    for (id, relay) in [("relayed", true), ("direct", false)] {
        let sf = dm.file(&format!("{id}.yaml"), &relay_source_yaml(id, &src, relay));
        dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&src, stop.clone());
    for (task, source, dst) in [
        ("via-relay", "relayed", &dst_relay),
        ("via-source", "direct", &dst_direct),
    ] {
        let tf = dm.file(
            &format!("{task}.yaml"),
            &task_yaml(task, "all", source, dst, &["r"]),
        );
        dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    src.exec("ALTER TABLE r.t ADD COLUMN extra INT DEFAULT 7")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let statements = writer.await.unwrap();
    assert!(
        statements > 1500,
        "the writer rotated the binlog at least once"
    );
    wait_applied(&dm, "via-relay", &src).await;
    wait_applied(&dm, "via-source", &src).await;
    let rows = assert_same(&src, &dst_relay, &["r"]).await;
    assert_same(&src, &dst_direct, &["r"]).await;
    assert!(rows > 3000, "{rows} rows compared");

    // The relay holds the source's binlog files under their names, event for event.
    let dir = relay_dir(&dm, "relayed");
    let names = binlog_names(&dir);
    assert!(names.len() >= 2, "the relay followed a rotation: {names:?}");
    for (i, name) in names.iter().enumerate() {
        let relayed = std::fs::read(dir.join(name)).unwrap();
        let original = std::fs::read(src.dir.path().join("data").join(name)).unwrap();
        let from = after_format_description(&original);
        assert_eq!(&relayed[..4], b"\xfebin", "{name} is a binlog file");
        assert_eq!(
            after_format_description(&relayed),
            from,
            "{name}: same format description"
        );
        let (ours, theirs) = (events(&relayed), events(&original));
        if i + 1 < names.len() {
            assert_eq!(ours.len(), theirs.len(), "{name}: number of events");
        } else {
            // The file being written: the relay has all of it up to the end.
            assert!(
                ours.len() <= theirs.len(),
                "{name}: more events than the source"
            );
        }
        let mut annotations = 0;
        for ((at, kind, bytes), (at2, kind2, bytes2)) in ours.iter().zip(&theirs) {
            assert_eq!((at, kind), (at2, kind2), "{name}: event at {at}");
            if *kind == ANNOTATE_ROWS {
                // Not sent by the server: the relay has a stand-in of the same size.
                annotations += 1;
                assert_eq!(bytes.len(), bytes2.len());
            } else {
                assert!(bytes == bytes2, "{name}: event at {at} differs");
            }
        }
        assert!(annotations > 0 || ours.len() < 10, "{name} had annotations");
    }
    let view = source_view(&dm, "relayed");
    assert_eq!(view["relay"]["stage"], "running", "{view}");
    let metrics = metrics_of(&dm.addr).await;
    assert!(
        metrics.contains("dm_relay_running{source=\"relayed\"} 1")
            && metrics.contains("dm_relay_bytes{source=\"relayed\"}"),
        "{metrics}"
    );
    assert!(view["relay"]["last_error"].is_null(), "{view}");
    assert_eq!(source_view(&dm, "direct")["relay"], Value::Null);
    assert!(
        !dm.log().contains("reading the source directly"),
        "the relayed task read the relay"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subtasks_go_on_from_the_relay_while_the_source_is_down_and_purge_keeps_what_they_need() {
    let (mut src, dst) = (MariaDb::start(1), MariaDb::start(2));
    seed(&src, 500).await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    dm.ctl_ok(&["start-relay", "src1"]);
    let tf = dm.file("task.yaml", &task_yaml("t", "all", "src1", &dst, &["r"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_applied(&dm, "t", &src).await;
    assert_same(&src, &dst, &["r"]).await;

    // pause-relay holds new events back; resume-relay lets them through.
    let out = dm.ctl_ok(&["pause-relay", "src1"]);
    assert!(out.contains("paused"), "{out}");
    wait_for("the relay to pause", Duration::from_secs(10), || {
        source_view(&dm, "src1")["relay"]["stage"] == "paused"
    })
    .await;
    src.exec("INSERT INTO r.t VALUES (-1, 0, 'while the relay pauses')")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut d = dst.conn().await;
    let held: Option<i64> = d
        .query_first("SELECT id FROM r.t WHERE id = -1")
        .await
        .unwrap();
    assert_eq!(held, None, "a paused relay passes nothing on");
    dm.ctl_ok(&["resume-relay", "src1"]);
    wait_applied(&dm, "t", &src).await;
    assert_same(&src, &dst, &["r"]).await;

    // The task is paused while the source writes; the relay takes everything in.
    dm.ctl_ok(&["pause-task", "t"]);
    for i in 0..3 {
        let values: Vec<String> = (0..200)
            .map(|j| format!("({}, {j}, 'outage')", 50_000 + i * 1000 + j))
            .collect();
        src.exec(&format!("INSERT INTO r.t VALUES {}", values.join(",")))
            .await;
        src.exec(&format!(
            "UPDATE r.t SET v = v + 1 WHERE id < {}",
            100 * (i + 1)
        ))
        .await;
        src.exec(&format!("DELETE FROM r.u WHERE id % 7 = {i}"))
            .await;
    }
    let end = src.master_pos().await;
    wait_relay_at(&dm, "src1", &end).await;
    let expected_t = rows_of(&src, "r.t").await;
    let expected_u = rows_of(&src, "r.u").await;

    // Source down: the task resumes and applies all of it from the relay.
    src.stop();
    dm.ctl_ok(&["resume-task", "t"]);
    wait_for(
        "the target to have what the source had",
        Duration::from_secs(60),
        || futures_now(rows_of(&dst, "r.t")) == expected_t,
    )
    .await;
    assert_eq!(rows_of(&dst, "r.u").await, expected_u);
    let st = dm.subtask("t").unwrap();
    assert_eq!(st["stage"], "running", "{st}");
    wait_for(
        "the relay to say the source is down",
        Duration::from_secs(30),
        || !source_view(&dm, "src1")["relay"]["last_error"].is_null(),
    )
    .await;

    // Source back: the relay and the task go on.
    src.start_again();
    src.exec("INSERT INTO r.t VALUES (-2, 0, 'after the outage')")
        .await;
    wait_applied(&dm, "t", &src).await;
    assert_same(&src, &dst, &["r"]).await;

    // Purge: files before the oldest position a task needs go, the rest stays, also while
    // that task is paused.
    for _ in 0..2 {
        src.exec("FLUSH BINARY LOGS").await;
        src.exec("INSERT INTO r.u VALUES (-3, 'rotated') ON DUPLICATE KEY UPDATE b = 'again'")
            .await;
    }
    wait_applied(&dm, "t", &src).await;
    dm.ctl_ok(&["pause-task", "t"]);
    let needed_file = src
        .master_pos()
        .await
        .split(':')
        .next()
        .unwrap()
        .to_string();
    for i in 0..2 {
        src.exec("FLUSH BINARY LOGS").await;
        src.exec(&format!("INSERT INTO r.u VALUES ({}, 'paused')", -10 - i))
            .await;
    }
    let end = src.master_pos().await;
    wait_relay_at(&dm, "src1", &end).await;
    let dir = relay_dir(&dm, "src1");
    let before = binlog_names(&dir);
    assert!(before.len() >= 4, "{before:?}");
    let out = dm.ctl_ok(&["purge-relay", "src1"]);
    let after = binlog_names(&dir);
    assert_eq!(
        after.first(),
        Some(&needed_file),
        "purge kept from the paused task's file on: {out}"
    );
    assert_eq!(after.last(), before.last());
    assert!(out.contains("task `t`"), "says why: {out}");
    // --filename cannot remove a needed file either.
    let last = after.last().unwrap().clone();
    let out = dm.ctl_ok(&["purge-relay", "src1", "--filename", &last]);
    assert!(out.contains("removed 0 file"), "{out}");
    assert_eq!(binlog_names(&dir), after);

    dm.ctl_ok(&["resume-task", "t"]);
    wait_applied(&dm, "t", &src).await;
    assert_same(&src, &dst, &["r"]).await;
    dm.ctl_ok(&["purge-relay", "src1"]);
    assert_eq!(
        binlog_names(&dir),
        vec![last],
        "only the file being written is left"
    );

    // stop-relay: the task reads the source directly again.
    dm.ctl_ok(&["stop-relay", "src1"]);
    src.exec("INSERT INTO r.t VALUES (-4, 0, 'direct again')")
        .await;
    wait_applied(&dm, "t", &src).await;
    assert_same(&src, &dst, &["r"]).await;
    assert_eq!(source_view(&dm, "src1")["enable_relay"], false);
}

/// Every row of `table`, in key order, as text.
async fn rows_of(db: &MariaDb, table: &str) -> Vec<Vec<String>> {
    let mut c = db.conn().await;
    let rows: Vec<mysql_async::Row> = c
        .query(format!("SELECT * FROM {table} ORDER BY id"))
        .await
        .unwrap();
    rows.into_iter().map(text_row).collect()
}

/// kill -9 while `purge-relay` runs, again and again: the paused task's files survive every
/// kill (its needed position is written atomically before anything is removed), and the task
/// resumes from the relay and ends equal.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_purge_keeps_what_a_paused_task_needs() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    seed(&src, 200).await;
    let mut dm = Dm::start();
    dm.create_source("src1", &src);
    dm.ctl_ok(&["start-relay", "src1"]);
    let tf = dm.file("task.yaml", &task_yaml("p", "all", "src1", &dst, &["r"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    for i in 0..3 {
        src.exec("FLUSH BINARY LOGS").await;
        src.exec(&format!("INSERT INTO r.u VALUES ({}, 'before')", -1 - i))
            .await;
    }
    same_rows(&src, &dst).await;
    // The file of the task's checkpoint once quiet: what it reads again when resumed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let position = dm.subtask("p").unwrap()["position"].clone();
    let needed_file = position
        .as_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    dm.ctl_ok(&["pause-task", "p"]);
    for i in 0..3 {
        src.exec("FLUSH BINARY LOGS").await;
        src.exec(&format!("INSERT INTO r.u VALUES ({}, 'paused')", -10 - i))
            .await;
    }
    let dir = relay_dir(&dm, "src1");
    for round in 0..6u64 {
        // The relay holds every transaction of the source (a binlog checkpoint event the
        // source writes after them may still be on its way).
        let pos = last_txn_end(&src).await;
        let at = |p: &str| -> (String, u64) {
            let (f, n) = p.split_once(':').unwrap_or(("", "0"));
            (f.to_string(), n.parse().unwrap_or(0))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while at(source_view(&dm, "src1")["relay"]["position"]
            .as_str()
            .unwrap_or(""))
            < at(&pos)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: the relay did not reach {pos}: {}\n{}",
                source_view(&dm, "src1"),
                dm.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let ctl = std::process::Command::new(dm_bin())
            .args(["ctl", "--master-addr", &dm.addr, "purge-relay", "src1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Somewhere in the request: before, during or after the removal.
        tokio::time::sleep(Duration::from_millis(round * 7)).await;
        dm.kill9();
        let _ = tokio::task::spawn_blocking(move || ctl.wait_with_output()).await;
        let left = binlog_names(&dir);
        assert!(
            left.contains(&needed_file),
            "round {round}: {needed_file} is gone: {left:?}"
        );
        dm.restart();
        src.exec(&format!(
            "INSERT INTO r.u VALUES ({}, 'round')",
            -100 - round as i64
        ))
        .await;
    }
    let out = dm.ctl_ok(&["purge-relay", "src1"]);
    assert_eq!(binlog_names(&dir).first(), Some(&needed_file), "{out}");

    // A needed.json that cannot be read means "keep everything", never "nothing needed".
    dm.kill9();
    std::fs::write(dir.join("needed.json"), b"{\"p\": {\"name\": ").unwrap();
    dm.restart();
    let files = binlog_names(&dir);
    let out = dm.ctl_ok(&["purge-relay", "src1"]);
    assert_eq!(binlog_names(&dir), files, "{out}");
    assert!(out.contains("unreadable"), "{out}");
    // Repaired by hand (here: removed) and restarted, the task's own position counts again.
    dm.kill9();
    std::fs::remove_file(dir.join("needed.json")).unwrap();
    dm.restart();
    dm.ctl_ok(&["resume-task", "p"]);
    same_rows(&src, &dst).await;
    assert_same(&src, &dst, &["r"]).await;
}

/// Waits until the target has as many rows in `r.u` as the source (positions are not
/// compared: the source writes binlog checkpoints after each rotation).
async fn same_rows(src: &MariaDb, dst: &MariaDb) {
    let sql = "SELECT COUNT(*) FROM r.u";
    let want: u64 = src.value(sql).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got: Option<u64> = dst.conn().await.query_first(sql).await.ok().flatten();
        if got == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{got:?} of {want} rows in r.u"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A relay writer that panics (a defect, here a failpoint) is reported and started again:
/// the relay catches up with the source and the task ends equal, where the relay stayed
/// unwritten (its readers waiting) before.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_writer_that_panics_is_reported_and_started_again() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    seed(&src, 200).await;
    let dm = Dm::start_with_failpoints("relay-writer-panic=1");
    dm.create_source("src1", &src);
    dm.ctl_ok(&["start-relay", "src1"]);
    let tf = dm.file("task.yaml", &task_yaml("t", "all", "src1", &dst, &["r"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    src.exec("UPDATE r.t SET v = v + 1 WHERE id < 100; DELETE FROM r.u WHERE id % 3 = 0")
        .await;
    let end = src.master_pos().await;
    wait_relay_at(&dm, "src1", &end).await;
    assert!(
        dm.log().contains("relay writer panicked"),
        "the panic is not reported:\n{}",
        dm.log()
    );
    wait_applied(&dm, "t", &src).await;
    assert_same(&src, &dst, &["r"]).await;
}

/// A disk that runs low between two purge ticks: each new relay file makes room first
/// (every file no task needs goes), instead of the relay filling the disk until the next tick
/// (an hour by default).
#[tokio::test(flavor = "multi_thread")]
async fn a_low_disk_is_purged_at_each_new_relay_file() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    seed(&src, 50).await;
    let dm = Dm::start();
    // More free space wanted than any disk has, and no tick within the test.
    let yaml = format!(
        "{}purge:\n  interval: 3600\n  remain-space: 100000000\n",
        relay_source_yaml("src1", &src, true)
    );
    let file = dm.file("src1.yaml", &yaml);
    dm.ctl_ok(&["operate-source", "create", file.to_str().unwrap()]);
    let tf = dm.file("task.yaml", &task_yaml("t", "all", "src1", &dst, &["r"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    for i in 0..4 {
        src.exec(&format!(
            "FLUSH BINARY LOGS; UPDATE r.t SET v = v + 1 WHERE id < {}",
            10 + i
        ))
        .await;
        wait_applied(&dm, "t", &src).await;
    }
    src.exec("UPDATE r.t SET v = v + 1 WHERE id < 5").await;
    let end = src.master_pos().await;
    wait_relay_at(&dm, "src1", &end).await;
    wait_applied(&dm, "t", &src).await;
    // Five source files went through the relay; what the task no longer needed was removed
    // at the rotations.
    let mut files = vec![];
    wait_for(
        "the relay's purge at a rotation",
        Duration::from_secs(10),
        || {
            files = binlog_names(&relay_dir(&dm, "src1"));
            !files.is_empty() && files.len() <= 3
        },
    )
    .await;
    let view = source_view(&dm, "src1");
    assert!(
        !view["relay"]["last_purge"]["removed"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{view}"
    );
    assert_same(&src, &dst, &["r"]).await;
}
