//! gh-ost and pt-online-schema-change on the source (`online-ddl`, on by default): the
//! ALTER a tool runs on its shadow table reaches the target's table at the swap, the shadow
//! table's copy never reaches the target, with a writer on the table throughout.
//!
//! pt-online-schema-change is the real one (Debian's percona-toolkit). gh-ost is not packaged
//! for Debian: `GhOst` runs its statements in its order (from its documentation: ghost table
//! LIKE the original, ALTER, changelog table, chunked `INSERT IGNORE ... SELECT` copy,
//! changes applied to the ghost table as they happen, cut-over by an atomic RENAME under
//! `LOCK TABLES` with a sentry table, or in two steps), the writer's changes reaching the ghost
//! table as gh-ost's binlog applier writes them.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const ROWS: u64 = 200_000;

async fn setup(src: &MariaDb, rows: u64) {
    src.exec(&format!(
        "CREATE DATABASE shop;
         CREATE TABLE shop.t (id BIGINT PRIMARY KEY, v INT NOT NULL, s VARCHAR(20) NOT NULL);
         USE shop; INSERT INTO shop.t SELECT seq, seq % 100, 'x' FROM seq_1_to_{rows};"
    ))
    .await;
}

/// Rows the target inserted so far (MariaDB's count of row insert requests).
async fn rows_inserted(dst: &MariaDb) -> u64 {
    let (_, v): (String, u64) = dst
        .conn()
        .await
        .query_first("SHOW GLOBAL STATUS LIKE 'Handler_write'")
        .await
        .unwrap()
        .unwrap();
    v
}

async fn start(dm: &Dm, src: &MariaDb, dst: &MariaDb, name: &str) {
    dm.create_source("src1", src);
    let tf = dm.file("task.yaml", &task_yaml(name, "all", "src1", dst, &["shop"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(dm, name, src).await;
}

/// The statements of one write on `shop.t`, and what gh-ost's applier runs for it on the
/// ghost table.
fn write(n: u64, ghost: Option<&str>) -> String {
    let k = (n * 7919) % ROWS + 1;
    let (on_t, on_ghost) = match n % 3 {
        0 => (
            format!("UPDATE shop.t SET v = v + 1 WHERE id = {k}"),
            format!("UPDATE shop.`{{g}}` SET v = v + 1 WHERE id = {k}"),
        ),
        1 => (
            format!(
                "INSERT INTO shop.t (id, v, s) VALUES ({}, {n}, 'w')",
                1_000_000 + n
            ),
            format!(
                "REPLACE INTO shop.`{{g}}` (id, v, s) VALUES ({}, {n}, 'w')",
                1_000_000 + n
            ),
        ),
        _ => (
            format!("DELETE FROM shop.t WHERE id = {}", (n * 104_729) % ROWS + 1),
            format!(
                "DELETE FROM shop.`{{g}}` WHERE id = {}",
                (n * 104_729) % ROWS + 1
            ),
        ),
    };
    match ghost {
        None => on_t,
        Some(g) => format!(
            "START TRANSACTION; {on_t}; {}; COMMIT",
            on_ghost.replace("{g}", g)
        ),
    }
}

/// A writer on `shop.t` until stopped. While `ghost` names a ghost table, each change also
/// reaches it (gh-ost's applier); holding `ghost`'s lock holds the writer (gh-ost's cut-over
/// lock).
fn spawn_writer(
    src: &MariaDb,
    stop: Arc<AtomicBool>,
    ghost: Arc<Mutex<Option<String>>>,
) -> tokio::task::JoinHandle<u64> {
    let opts = src.opts();
    tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let g = ghost.lock().await;
            c.query_drop(write(n, g.as_deref())).await.unwrap();
            drop(g);
            n += 1;
        }
        n
    })
}

/// gh-ost's statements on `shop.t`, run step by step.
struct GhOst<'a> {
    src: &'a MariaDb,
    ghost: Arc<Mutex<Option<String>>>,
}

#[derive(Clone, Copy, PartialEq)]
enum CutOver {
    Atomic,
    TwoStep,
}

impl GhOst<'_> {
    /// Ghost and changelog tables, the ALTER, then the writer's changes reach the ghost.
    async fn begin(&self, alter: &str) {
        let mut g = self.ghost.lock().await;
        self.src
            .exec(&format!(
                "create /* gh-ost */ table `shop`.`_t_gho` like `shop`.`t`;
                 alter /* gh-ost */ table `shop`.`_t_gho` {alter};
                 create /* gh-ost */ table `shop`.`_t_ghc` (
                   id bigint unsigned auto_increment,
                   last_update timestamp not null DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
                   hint varchar(64) charset ascii not null,
                   value varchar(4096) charset ascii not null,
                   primary key(id), unique key hint_uidx(hint)
                 ) auto_increment=256;
                 insert /* gh-ost */ into `shop`.`_t_ghc` (id, hint, value)
                   values (NULLIF(2, 0), 'state', 'GhostTableMigrated')
                   on duplicate key update last_update=NOW(), value=VALUES(value);"
            ))
            .await;
        *g = Some("_t_gho".into());
    }

    /// The row copy, in chunks of the primary key, while the writer goes on.
    async fn copy(&self) {
        let max: u64 = self.src.value("SELECT MAX(id) FROM shop.t").await;
        let mut c = self.src.conn().await;
        let mut lo = 0;
        while lo <= max {
            c.query_drop(format!(
                "insert /* gh-ost */ ignore into `shop`.`_t_gho` (`id`, `v`, `s`)
                 (select `id`, `v`, `s` from `shop`.`t` force index (`PRIMARY`)
                  where `id` >= {lo} and `id` < {} lock in share mode)",
                lo + 20_000
            ))
            .await
            .unwrap();
            lo += 20_000;
        }
    }

    async fn cut_over(&self, how: CutOver) {
        // Writers wait, as gh-ost's LOCK TABLES makes them.
        let mut g = self.ghost.lock().await;
        match how {
            CutOver::Atomic => {
                let mut lock = self.src.conn().await;
                lock.query_drop(
                    "create /* gh-ost */ table `shop`.`_t_del` (id int auto_increment primary key) \
                     engine=InnoDB comment='ghost-cut-over-sentry'",
                )
                .await
                .unwrap();
                lock.query_drop("lock /* gh-ost */ tables `shop`.`t` write, `shop`.`_t_del` write")
                    .await
                    .unwrap();
                let mut rename = self.src.conn().await;
                let renamed = tokio::spawn(async move {
                    rename
                        .query_drop(
                            "rename /* gh-ost */ table `shop`.`t` to `shop`.`_t_del`, \
                             `shop`.`_t_gho` to `shop`.`t`",
                        )
                        .await
                        .unwrap();
                });
                // The RENAME waits for the lock; then the sentry goes and the lock ends.
                let mut probe = self.src.conn().await;
                loop {
                    let waiting: Option<u64> = probe
                        .query_first(
                            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                             WHERE INFO LIKE 'rename /* gh-ost */%'",
                        )
                        .await
                        .unwrap();
                    if waiting == Some(1) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                lock.query_drop("drop /* gh-ost */ table if exists `shop`.`_t_del`")
                    .await
                    .unwrap();
                lock.query_drop("unlock tables").await.unwrap();
                renamed.await.unwrap();
            }
            CutOver::TwoStep => {
                self.src
                    .exec(
                        "rename /* gh-ost */ table `shop`.`t` to `shop`.`_t_del`;
                         rename /* gh-ost */ table `shop`.`_t_gho` to `shop`.`t`;",
                    )
                    .await;
            }
        }
        *g = None;
        drop(g);
        self.src
            .exec(
                "drop /* gh-ost */ table if exists `shop`.`_t_ghc`;
                 drop /* gh-ost */ table if exists `shop`.`_t_del`;",
            )
            .await;
    }

    /// Given up before the cut-over: its tables go, `shop.t` stays as it was.
    async fn abandon(&self) {
        let mut g = self.ghost.lock().await;
        *g = None;
        self.src
            .exec(
                "drop /* gh-ost */ table if exists `shop`.`_t_gho`;
                 drop /* gh-ost */ table if exists `shop`.`_t_ghc`;",
            )
            .await;
    }
}

async fn wait_online_ddl(dm: &Dm, task: &str) -> serde_json::Value {
    let mut seen = serde_json::Value::Null;
    wait_for(
        "the online schema change in query-status",
        Duration::from_secs(60),
        || {
            seen = dm.subtask(task).unwrap_or_default()["online_ddl"].clone();
            seen.as_array().is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    seen[0].clone()
}

async fn show_create(db: &MariaDb, table: &str) -> String {
    let (_, def): (String, String) = db
        .conn()
        .await
        .query_first(format!("SHOW CREATE TABLE {table}"))
        .await
        .unwrap()
        .unwrap();
    def
}

#[tokio::test(flavor = "multi_thread")]
async fn pt_online_schema_change_reaches_the_target_without_its_copy() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    setup(&src, ROWS).await;
    let dm = Dm::start();
    start(&dm, &src, &dst, "osc").await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&src, stop.clone(), Arc::new(Mutex::new(None)));
    let before = rows_inserted(&dst).await;
    let port = src.port;
    let pt = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pt-online-schema-change")
            .args([
                "--alter",
                "ADD COLUMN c INT NULL, ADD INDEX ic (c)",
                "--execute",
                "--no-version-check",
                "--recursion-method=none",
                "--chunk-size=2000",
                "--sleep=0.1",
            ])
            .arg(format!("h=127.0.0.1,P={port},u=root,D=shop,t=t"))
            .output()
            .unwrap()
    });
    let status = wait_online_ddl(&dm, "osc").await;
    assert_eq!(status["tool"], "pt-online-schema-change", "{status}");
    assert_eq!(status["table"], "`shop`.`t`", "{status}");
    let out = pt.await.unwrap();
    assert!(
        out.status.success(),
        "pt-online-schema-change failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    wait_caught_up(&dm, "osc", &src).await;

    let def = show_create(&dst, "shop.t").await;
    assert!(
        def.contains("`c` int(11) DEFAULT NULL") && def.contains("KEY `ic` (`c`)"),
        "{def}"
    );
    // Table lists (no _t_new, _t_old), definitions and rows equal.
    let rows = assert_same(&src, &dst, &["shop"]).await;
    assert!(rows as u64 > ROWS / 2);
    // The copy (200k rows into _t_new) never reached the target: only the writer's inserts
    // (a third of its writes) and dm's own bookkeeping did.
    let inserted = rows_inserted(&dst).await - before;
    assert!(
        inserted < writes / 3 + 20_000,
        "the target inserted {inserted} rows for {writes} writes"
    );
    assert_eq!(
        dm.subtask("osc").unwrap()["online_ddl"],
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gh_ost_atomic_and_two_step_cut_overs_reach_the_target_without_the_copy() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    setup(&src, ROWS).await;
    let dm = Dm::start();
    start(&dm, &src, &dst, "gho").await;

    let stop = Arc::new(AtomicBool::new(false));
    let ghost = Arc::new(Mutex::new(None));
    let writer = spawn_writer(&src, stop.clone(), ghost.clone());
    let gh = GhOst {
        src: &src,
        ghost: ghost.clone(),
    };
    let before = rows_inserted(&dst).await;
    for (how, alter) in [
        (CutOver::Atomic, "add column c int null, add index ic (c)"),
        (
            CutOver::TwoStep,
            "modify s varchar(40) not null default 'y'",
        ),
    ] {
        gh.begin(alter).await;
        let status = wait_online_ddl(&dm, "gho").await;
        assert_eq!(status["tool"], "gh-ost", "{status}");
        assert_eq!(status["shadow"], "`shop`.`_t_gho`", "{status}");
        gh.copy().await;
        gh.cut_over(how).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    wait_caught_up(&dm, "gho", &src).await;

    let def = show_create(&dst, "shop.t").await;
    assert!(
        def.contains("KEY `ic` (`c`)") && def.contains("`s` varchar(40) NOT NULL DEFAULT 'y'"),
        "{def}"
    );
    assert_same(&src, &dst, &["shop"]).await;
    let inserted = rows_inserted(&dst).await - before;
    assert!(
        inserted < writes / 3 + 20_000,
        "the target inserted {inserted} rows for {writes} writes (two copies of {ROWS} rows ran)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_between_the_shadow_alter_and_the_cut_over_keeps_the_alter() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    setup(&src, 20_000).await;
    let mut dm = Dm::start();
    start(&dm, &src, &dst, "gho").await;

    let stop = Arc::new(AtomicBool::new(false));
    let ghost = Arc::new(Mutex::new(None));
    let writer = spawn_writer(&src, stop.clone(), ghost.clone());
    let gh = GhOst {
        src: &src,
        ghost: ghost.clone(),
    };
    gh.begin("add column c int null default 7").await;
    let status = wait_online_ddl(&dm, "gho").await;
    assert!(
        status["statements"][0]
            .as_str()
            .is_some_and(|s| s.contains("`shop`.`t` add column c int null default 7")),
        "{status}"
    );
    dm.kill9();
    gh.copy().await;
    dm.restart();
    // After the restart the statement is still waiting for its swap.
    let status = wait_online_ddl(&dm, "gho").await;
    assert_eq!(status["shadow"], "`shop`.`_t_gho`", "{status}");
    gh.cut_over(CutOver::Atomic).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    wait_caught_up(&dm, "gho", &src).await;
    let def = show_create(&dst, "shop.t").await;
    assert!(def.contains("`c` int(11) DEFAULT 7"), "{def}");
    assert_same(&src, &dst, &["shop"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_gh_ost_run_leaves_the_target_table_as_it_was() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    setup(&src, 20_000).await;
    let dm = Dm::start();
    start(&dm, &src, &dst, "gho").await;
    let def = show_create(&dst, "shop.t").await;

    let stop = Arc::new(AtomicBool::new(false));
    let ghost = Arc::new(Mutex::new(None));
    let writer = spawn_writer(&src, stop.clone(), ghost.clone());
    let gh = GhOst {
        src: &src,
        ghost: ghost.clone(),
    };
    gh.begin("add column d int null").await;
    wait_online_ddl(&dm, "gho").await;
    // check-task names the tool's tables it will not migrate.
    let tf = dm.dir.path().join("task.yaml");
    let (_, out) = dm.ctl(&["--output", "json", "check-task", tf.to_str().unwrap()]);
    assert!(
        out.contains("online schema change tables") && out.contains("shop._t_gho (shadow of t)"),
        "{out}"
    );
    gh.copy().await;
    gh.abandon().await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    wait_caught_up(&dm, "gho", &src).await;
    let st = dm.subtask("gho").unwrap();
    assert_eq!(st["stage"], "running", "{st}");
    assert_eq!(st["online_ddl"], serde_json::json!([]), "{st}");
    assert_eq!(show_create(&dst, "shop.t").await, def);
    assert_same(&src, &dst, &["shop"]).await;
}
