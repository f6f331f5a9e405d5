//! Shard DDL coordination: 2 sources x 4 shard schemas x 4 shard tables merged into one table
//! (with extract columns), DDLs reaching the shards at different times while rows stream, in
//! both shard modes; conflicts pause and are resolved with `shard-ddl-lock unlock` and
//! `binlog replace`. Every scenario ends with the merged table equal to the union of shards.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Row;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ROUTES: &str = "
routes:
  merge-orders:
    schema-pattern: shard_*
    table-pattern: orders_*
    target-schema: merged
    target-table: orders
    extract-source:
      source-regexp: src(.*)
      target-column: c_source
    extract-schema:
      schema-regexp: shard_(.*)
      target-column: c_schema
    extract-table:
      table-regexp: orders_(.*)
      target-column: c_table
";

/// (source index, schema, table) of every shard: schemas 1-4 on source 1, 5-8 on source 2.
fn shards() -> Vec<(usize, String, String)> {
    let mut out = vec![];
    for s in 1..=8 {
        for t in 1..=4 {
            out.push(((s - 1) / 4, format!("shard_{s}"), format!("orders_{t}")));
        }
    }
    out
}

/// The union of the shards as the merged table should hold it: `cols` of each row, then the
/// extract columns.
async fn expected(srcs: &[&MariaDb], cols: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for (i, db, t) in shards() {
        let mut c = srcs[i].conn().await;
        let rows: Vec<Row> = c
            .query(format!(
                "SELECT {cols}, '{}', '{}', '{}' FROM {db}.{t}",
                i + 1,
                db.trim_start_matches("shard_"),
                t.trim_start_matches("orders_")
            ))
            .await
            .unwrap();
        all.extend(rows.into_iter().map(text_row));
    }
    all.sort();
    all
}

async fn merged(dst: &MariaDb, cols: &str) -> Vec<Vec<String>> {
    let mut c = dst.conn().await;
    let rows: Vec<Row> = c
        .query(format!(
            "SELECT {cols}, c_source, c_schema, c_table FROM merged.orders"
        ))
        .await
        .unwrap();
    let mut all: Vec<Vec<String>> = rows.into_iter().map(text_row).collect();
    all.sort();
    all
}

async fn target_columns(dst: &MariaDb) -> Vec<String> {
    let mut c = dst.conn().await;
    c.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'merged' \
         AND table_name = 'orders' ORDER BY ordinal_position",
    )
    .await
    .unwrap()
}

/// The merged table equals the union of the shards; if not, says which rows differ and what
/// dm did with the shards' DDLs.
async fn assert_merged(dst: &MariaDb, srcs: &[&MariaDb], cols: &str, dm: &Dm) {
    let (got, want) = (merged(dst, cols).await, expected(srcs, cols).await);
    if got == want {
        return;
    }
    let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).collect();
    let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).collect();
    let shard_log: String = dm
        .log()
        .lines()
        .filter(|l| l.contains("shard") || l.contains("WARN") || l.contains("ERROR"))
        .map(|l| format!("{l}\n"))
        .collect();
    panic!("merged table differs\nmissing: {missing:?}\nunexpected: {extra:?}\n{shard_log}");
}

/// Two sources with 16 shards each, a task merging them under `mode`, caught up.
async fn setup(mode: &str) -> (MariaDb, MariaDb, MariaDb, Dm) {
    let (s1, s2, dst, dm) = start_merge(mode, "").await;
    for (id, src) in [("src1", &s1), ("src2", &s2)] {
        wait_caught_up_all(&dm, "sh", id, src).await;
    }
    assert_eq!(merged(&dst, "id, v, note").await.len(), 32 * 20);
    (s1, s2, dst, dm)
}

/// Two sources with 16 shards each and a task merging them under `mode` started, with dm's
/// `failpoints` (`DM_FAILPOINTS`).
async fn start_merge(mode: &str, failpoints: &str) -> (MariaDb, MariaDb, MariaDb, Dm) {
    let (s1, s2, dst) = (MariaDb::start(1), MariaDb::start(2), MariaDb::start(3));
    for (i, db, t) in shards() {
        let src = [&s1, &s2][i];
        src.exec(&format!(
            "CREATE DATABASE IF NOT EXISTS {db}; USE {db};
             CREATE TABLE {t} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(10) NOT NULL DEFAULT 'n');
             INSERT INTO {t} (id, v) SELECT seq, seq FROM seq_1_to_20;"
        ))
        .await;
    }
    let mut dm = Dm::start();
    if !failpoints.is_empty() {
        dm.kill9();
        dm.env = vec![("DM_FAILPOINTS".into(), failpoints.into())];
        dm.restart();
    }
    dm.create_source("src1", &s1);
    dm.create_source("src2", &s2);
    let yaml = format!(
        "name: sh\ntask-mode: all\nshard-mode: {mode}\ntarget-database:\n  {}\nmysql-instances:\n{}block-allow-list:\n  sel:\n    do-dbs: [\"shard_*\"]\n{ROUTES}",
        dst.yaml(),
        ["src1", "src2"]
            .iter()
            .map(|s| format!("  - source-id: {s}\n    block-allow-list: sel\n    route-rules: [merge-orders]\n"))
            .collect::<String>()
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    (s1, s2, dst, dm)
}

/// Waits until the subtask of `source` (the server `src`) has applied its current position.
async fn wait_caught_up_all(dm: &Dm, task: &str, source: &str, src: &MariaDb) {
    let target = src.master_pos().await;
    wait_for("caught up", Duration::from_secs(120), || {
        let (ok, text) = dm.ctl(&["--output", "json", "query-status", task]);
        if !ok {
            return false;
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let subtasks = v["subtasks"].as_array().unwrap();
        for s in subtasks {
            assert_ne!(s["stage"], "paused", "{s}\n{}", dm.log());
        }
        subtasks.iter().any(|s| {
            s["source_id"] == source
                && position_reached(s["position"].as_str().unwrap_or(""), &target)
        })
    })
    .await;
}

/// Waits until no shard DDL lock is left (released shards have caught up).
async fn wait_no_lock(dm: &Dm) {
    wait_for("no lock left", Duration::from_secs(30), || {
        dm.ctl_ok(&["shard-ddl-lock"]).contains("no shard DDL lock")
    })
    .await;
}

/// Random row changes on every shard of both sources until stopped.
fn spawn_writers(srcs: [&MariaDb; 2], stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<u64>> {
    srcs.iter()
        .enumerate()
        .map(|(i, src)| {
            let opts = src.opts();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut c = mysql_async::Conn::new(opts).await.unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let s = 1 + i * 4 + (n as usize % 4);
                    let t = 1 + (n as usize / 4) % 4;
                    let k = (n * 13) % 20 + 1;
                    let sql = match n % 3 {
                        0 => format!("UPDATE shard_{s}.orders_{t} SET v = v + 1 WHERE id = {k}"),
                        1 => format!(
                            "INSERT INTO shard_{s}.orders_{t} (id, v) VALUES ({}, {n})",
                            1000 + n
                        ),
                        _ => format!(
                            "DELETE FROM shard_{s}.orders_{t} WHERE id = {}",
                            1000 + n - 1
                        ),
                    };
                    c.query_drop(sql).await.unwrap();
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                n
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pessimistic_ddl_runs_once_when_every_shard_sent_it() {
    let (s1, s2, dst, dm) = setup("pessimistic").await;
    let srcs = [&s1, &s2];
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(srcs, stop.clone());

    // ADD COLUMN reaches half of the shards; one of them writes a row with the new column.
    let all = shards();
    let (first, rest) = all.split_at(16);
    let alter =
        |db: &str, t: &str| format!("ALTER TABLE {db}.{t} ADD COLUMN extra INT NOT NULL DEFAULT 7");
    for (i, db, t) in first.iter().step_by(2).chain(rest.iter().step_by(2)) {
        srcs[*i].exec(&alter(db, t)).await;
    }
    s1.exec("INSERT INTO shard_1.orders_1 (id, v, extra) VALUES (500, 5, 8)")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The lock waits: the target has no new column and the held row is not there.
    assert!(!target_columns(&dst).await.contains(&"extra".to_string()));
    let locks = dm.ctl_ok(&["--output", "json", "shard-ddl-lock", "sh"]);
    let v: serde_json::Value = serde_json::from_str(&locks).unwrap();
    assert_eq!(v[0]["arrived"].as_array().unwrap().len(), 16, "{locks}");
    assert_eq!(v[0]["waiting_for"].as_array().unwrap().len(), 16, "{locks}");
    assert!(dm.ctl_ok(&["shard-ddl-lock"]).contains("merged.orders"));
    // TiDB DM's query-status fields say the same, per source.
    let status: serde_json::Value =
        serde_json::from_str(&dm.ctl_ok(&["-o", "json", "query-status", "sh"])).unwrap();
    for st in status["subtasks"].as_array().unwrap() {
        assert_eq!(
            st["unresolvedGroups"],
            serde_json::json!(["merged.orders"]),
            "{st}"
        );
        assert!(
            st["blockingDDLs"][0]
                .as_str()
                .is_some_and(|d| d.contains("extra")),
            "{st}"
        );
        assert_eq!(st["synced"], false, "{st}");
    }
    let held: Option<i64> = dst
        .conn()
        .await
        .query_first("SELECT COUNT(*) FROM merged.orders WHERE id = 500")
        .await
        .unwrap();
    assert_eq!(held, Some(0), "a held row reached the target");
    let metrics = metrics_of(&dm.addr).await;
    assert!(
        metrics.contains("dm_shard_ddl_pending{task=\"sh\",target=\"merged.orders\"} 16")
            && metrics.contains("dm_subtasks{stage=\"running\"} 2"),
        "{metrics}"
    );

    // The lock and the held rows survive a crash.
    let mut dm = dm;
    dm.kill9();
    dm.restart();

    for (i, db, t) in first
        .iter()
        .skip(1)
        .step_by(2)
        .chain(rest.iter().skip(1).step_by(2))
    {
        srcs[*i].exec(&alter(db, t)).await;
    }
    wait_for("the column on the target", Duration::from_secs(60), || {
        futures_now(target_columns(&dst)).contains(&"extra".to_string())
    })
    .await;

    // A mismatched DDL: one shard widens differently; its subtask pauses naming the shards.
    for (i, db, t) in &all {
        let ty = if db == "shard_6" && t == "orders_3" {
            "VARCHAR(30)"
        } else {
            "VARCHAR(20)"
        };
        srcs[*i]
            .exec(&format!("ALTER TABLE {db}.{t} ADD COLUMN tag {ty} NULL"))
            .await;
    }
    let err = wait_paused(&dm, "sh").await;
    assert_eq!(err["code"], "DM-SHARD-6101", "{err}\n{}", dm.log());
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("src2:shard_6.orders_3 sent") && msg.contains("VARCHAR(30)"),
        "{msg}"
    );
    // The odd shard's DDL is sent as the one the others agree on.
    dm.ctl_ok(&[
        "binlog",
        "replace",
        "sh",
        "ALTER TABLE shard_6.orders_3 ADD COLUMN tag VARCHAR(20) NULL",
    ]);
    s2.exec("INSERT INTO shard_6.orders_3 (id, v, tag) VALUES (600, 6, 'late')")
        .await;

    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    for (id, src) in [("src1", &s1), ("src2", &s2)] {
        wait_caught_up_all(&dm, "sh", id, src).await;
    }
    wait_no_lock(&dm).await;
    let cols = "id, v, note, extra, tag";
    assert_merged(&dst, &srcs, cols, &dm).await;
}

/// Killed after a shard sent its DDL and before the checkpoint after it: the restarted
/// stream applies the shard's rows before the DDL, takes the DDL (sent already) into the
/// tracked schema, and once every shard sent it catches the shard up from its DDL.
#[tokio::test(flavor = "multi_thread")]
async fn pessimistic_shard_killed_between_its_ddl_and_the_checkpoint() {
    let (s1, s2, dst, mut dm) = setup("pessimistic").await;
    let srcs = [&s1, &s2];
    dm.kill9();
    dm.env = vec![("DM_FAILPOINTS".into(), "after-shard-ddl-sent=60000".into())];
    dm.restart();
    s1.exec(
        "INSERT INTO shard_1.orders_1 (id, v) VALUES (900, 9);
         ALTER TABLE shard_1.orders_1 ADD COLUMN extra INT NOT NULL DEFAULT 7",
    )
    .await;
    wait_for("the DDL sent", Duration::from_secs(60), || {
        dm.log().contains("failpoint: pausing")
    })
    .await;
    dm.kill9();
    dm.env.clear();
    dm.restart();
    // A row after the DDL: held until every shard sent it.
    s1.exec("INSERT INTO shard_1.orders_1 (id, v, extra) VALUES (901, 9, 8)")
        .await;
    for (i, db, t) in shards().iter().skip(1) {
        srcs[*i]
            .exec(&format!(
                "ALTER TABLE {db}.{t} ADD COLUMN extra INT NOT NULL DEFAULT 7"
            ))
            .await;
    }
    for (id, src) in [("src1", &s1), ("src2", &s2)] {
        wait_caught_up_all(&dm, "sh", id, src).await;
    }
    wait_no_lock(&dm).await;
    assert_merged(&dst, &srcs, "id, v, note, extra", &dm).await;
}

/// ALTERs on every shard while the full phase runs, after the merged table was created from
/// the shards' old definition and before their rows are copied (the CI flake of
/// `remove_meta_starts_shard_coordination_over`): the target gets the column, since a shard's
/// copy adds what the merged table lacks, and every row arrives with its value.
#[tokio::test(flavor = "multi_thread")]
async fn pessimistic_ddl_during_the_full_phase_reaches_the_merged_table() {
    let (s1, s2, dst, dm) = start_merge("pessimistic", "after-tables-planned=6000").await;
    let srcs = [&s1, &s2];
    wait_for("both sources planned", Duration::from_secs(60), || {
        dm.log().matches("failpoint: pausing").count() >= 2
    })
    .await;
    for (i, db, t) in &shards() {
        srcs[*i]
            .exec(&format!(
                "ALTER TABLE {db}.{t} ADD COLUMN extra INT NOT NULL DEFAULT 7;
                 INSERT INTO {db}.{t} (id, v, extra) VALUES (100, 1, 8)"
            ))
            .await;
    }
    for (id, src) in [("src1", &s1), ("src2", &s2)] {
        wait_caught_up_all(&dm, "sh", id, src).await;
    }
    assert_merged(&dst, &srcs, "id, v, note, extra", &dm).await;
}

/// `start-task --remove-meta` starts shard coordination over: a conflict of the earlier run
/// does not hold the new run's DDLs.
#[tokio::test(flavor = "multi_thread")]
async fn remove_meta_starts_shard_coordination_over() {
    let (s1, s2, dst, dm) = setup("optimistic").await;
    let srcs = [&s1, &s2];
    s1.exec("ALTER TABLE shard_1.orders_1 MODIFY v SMALLINT NOT NULL")
        .await;
    let err = wait_paused(&dm, "sh").await;
    assert_eq!(err["code"], "DM-SHARD-6101", "{err}");
    dm.ctl_ok(&["stop-task", "sh"]);

    // The user starts over, in pessimistic mode: the shard gets its type back, the target is
    // emptied.
    s1.exec("ALTER TABLE shard_1.orders_1 MODIFY v INT NOT NULL")
        .await;
    dst.exec("DROP DATABASE merged").await;
    let tf = dm.dir.path().join("task.yaml");
    let yaml = std::fs::read_to_string(&tf).unwrap();
    std::fs::write(
        &tf,
        yaml.replace("shard-mode: optimistic", "shard-mode: pessimistic"),
    )
    .unwrap();
    dm.ctl_ok(&["start-task", "--remove-meta", tf.to_str().unwrap()]);
    // The new run's full phase is done before the shards change.
    for (id, src) in [("src1", &s1), ("src2", &s2)] {
        wait_caught_up_all(&dm, "sh", id, src).await;
    }
    let all = shards();
    let add = |db: &str, t: &str| format!("ALTER TABLE {db}.{t} ADD COLUMN extra INT NULL");
    srcs[all[0].0].exec(&add(&all[0].1, &all[0].2)).await;
    // Decided by the pessimistic policy now, not the first run's optimistic one: the column
    // waits for every shard.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!target_columns(&dst).await.contains(&"extra".to_string()));
    for (i, db, t) in &all[1..] {
        srcs[*i].exec(&add(db, t)).await;
    }
    wait_for("the column on the target", Duration::from_secs(60), || {
        futures_now(target_columns(&dst)).contains(&"extra".to_string())
    })
    .await;
    for (id, src) in [("src1", &s1), ("src2", &s2)] {
        wait_caught_up_all(&dm, "sh", id, src).await;
    }
    // Released shards catch up before the lock goes.
    wait_no_lock(&dm).await;
    assert_merged(&dst, &srcs, "id, v, note, extra", &dm).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn optimistic_ddl_adds_and_widens_at_once_drops_last_and_pauses_on_narrowing() {
    let (s1, s2, dst, dm) = setup("optimistic").await;
    let srcs = [&s1, &s2];
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(srcs, stop.clone());
    let all = shards();

    // An additive change runs at the first shard: its new rows arrive at once.
    s2.exec("ALTER TABLE shard_5.orders_2 ADD COLUMN extra INT NULL")
        .await;
    s2.exec("INSERT INTO shard_5.orders_2 (id, v, extra) VALUES (700, 7, 70)")
        .await;
    wait_for(
        "the row of the altered shard",
        Duration::from_secs(60),
        || {
            futures_now(async {
                let mut c = dst.conn().await;
                let n: Option<i64> = c
                    .query_first(
                        "SELECT extra FROM merged.orders WHERE id = 700 AND c_schema = '5'",
                    )
                    .await
                    .unwrap_or(None);
                n == Some(70)
            })
        },
    )
    .await;
    for (i, db, t) in &all {
        if !(db == "shard_5" && t == "orders_2") {
            srcs[*i]
                .exec(&format!("ALTER TABLE {db}.{t} ADD COLUMN extra INT NULL"))
                .await;
        }
    }

    // A drop waits for the last shard: until then the target keeps the column.
    for (i, db, t) in &all[..31] {
        srcs[*i]
            .exec(&format!("ALTER TABLE {db}.{t} DROP COLUMN note"))
            .await;
    }
    s1.exec("INSERT INTO shard_1.orders_1 (id, v, extra) VALUES (800, 8, 80)")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(target_columns(&dst).await.contains(&"note".to_string()));
    let (i, db, t) = &all[31];
    srcs[*i]
        .exec(&format!("ALTER TABLE {db}.{t} DROP COLUMN note"))
        .await;
    wait_for("the drop on the target", Duration::from_secs(60), || {
        !futures_now(target_columns(&dst)).contains(&"note".to_string())
    })
    .await;

    // One statement that adds and drops: the addition at the first shard, the drop last.
    let mixed = |db: &str, t: &str| {
        format!("ALTER TABLE {db}.{t} ADD COLUMN c4 INT NULL DEFAULT 4, DROP COLUMN extra")
    };
    s1.exec(&mixed("shard_1", "orders_1")).await;
    s1.exec("INSERT INTO shard_1.orders_1 (id, v, c4) VALUES (801, 8, 44)")
        .await;
    wait_for("the added column's row", Duration::from_secs(60), || {
        futures_now(async {
            let mut c = dst.conn().await;
            let n: Option<i64> = c
                .query_first("SELECT c4 FROM merged.orders WHERE id = 801 AND c_schema = '1'")
                .await
                .unwrap_or(None);
            n == Some(44)
        })
    })
    .await;
    assert!(target_columns(&dst).await.contains(&"extra".to_string()));
    for (i, db, t) in &all[1..] {
        srcs[*i].exec(&mixed(db, t)).await;
    }
    wait_for(
        "the mixed drop on the target",
        Duration::from_secs(60),
        || !futures_now(target_columns(&dst)).contains(&"extra".to_string()),
    )
    .await;

    // A widened type runs at the first shard too.
    s2.exec("ALTER TABLE shard_7.orders_1 MODIFY v BIGINT NOT NULL")
        .await;
    wait_for("the wider column on the target", Duration::from_secs(60), || {
        futures_now(async {
            let mut c = dst.conn().await;
            let t: Option<String> = c
                .query_first(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = 'merged' \
                     AND table_name = 'orders' AND column_name = 'v'",
                )
                .await
                .unwrap();
            t.as_deref() == Some("bigint")
        })
    })
    .await;
    for (i, db, t) in &all {
        if !(db == "shard_7" && t == "orders_1") {
            srcs[*i]
                .exec(&format!("ALTER TABLE {db}.{t} MODIFY v BIGINT NOT NULL"))
                .await;
        }
    }

    // An incompatible change pauses with an explanation; the user keeps the target as it
    // is (`unlock --skip`) and the shard goes on.
    s1.exec("ALTER TABLE shard_2.orders_4 MODIFY v SMALLINT NOT NULL")
        .await;
    let err = wait_paused(&dm, "sh").await;
    assert_eq!(err["code"], "DM-SHARD-6101", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("does not hold every value"),
        "{err}"
    );
    let locks = dm.ctl_ok(&["shard-ddl-lock", "sh"]);
    assert!(locks.contains("src1:shard_2.orders_4"), "{locks}");
    // TiDB DM's owner names the source whose DDL runs: one that sent none is refused.
    let (ok, out) = dm.ctl(&[
        "shard-ddl-lock",
        "unlock",
        "sh",
        "merged.orders",
        "--exec",
        "--owner",
        "src9",
        "-f",
    ]);
    assert!(!ok && out.contains("source `src9` sent no DDL"), "{out}");
    dm.ctl_ok(&["shard-ddl-lock", "unlock", "sh", "merged.orders", "--skip"]);
    s1.exec("INSERT INTO shard_2.orders_4 (id, v) VALUES (900, 9)")
        .await;

    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    for (id, src) in [("src1", &s1), ("src2", &s2)] {
        wait_caught_up_all(&dm, "sh", id, src).await;
    }
    let cols = "id, v, c4";
    assert_merged(&dst, &srcs, cols, &dm).await;

    // The coordinator runs a shard's DDL in the session the shard ran it in: existing rows
    // get the statement's time in its zone.
    for (i, db, t) in &all {
        srcs[*i]
            .exec(&format!(
                "SET time_zone = '+02:00'; SET timestamp = 1000000000; \
                 ALTER TABLE {db}.{t} ADD COLUMN at_dt DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP"
            ))
            .await;
    }
    for (id, src) in [("src1", &s1), ("src2", &s2)] {
        wait_caught_up_all(&dm, "sh", id, src).await;
    }
    assert_merged(&dst, &srcs, "id, v, c4, at_dt", &dm).await;
    let at: String = dst
        .value("SELECT DISTINCT CAST(at_dt AS CHAR) FROM merged.orders")
        .await;
    assert_eq!(at, "2001-09-09 03:46:40");

    // TRUNCATE of one shard, as in TiDB DM: the merged table keeps that shard's rows.
    let shard_rows = |dst: &MariaDb| {
        futures_now(async {
            let mut c = dst.conn().await;
            let ids: Vec<i64> = c
                .query(
                    "SELECT id FROM merged.orders WHERE c_source = '1' AND c_schema = '3'                      AND c_table = '3' ORDER BY id",
                )
                .await
                .unwrap();
            ids
        })
    };
    let before = shard_rows(&dst);
    assert!(!before.is_empty());
    s1.exec(
        "TRUNCATE TABLE shard_3.orders_3; INSERT INTO shard_3.orders_3 (id, v) VALUES (5000, 5)",
    )
    .await;
    wait_caught_up_all(&dm, "sh", "src1", &s1).await;
    let mut want = before;
    want.push(5000);
    assert_eq!(shard_rows(&dst), want);
}
