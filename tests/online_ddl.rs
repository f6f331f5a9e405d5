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

/// A table the tests write and change: `db`.`name`, ids from `base`.
#[derive(Clone, Copy)]
struct Tbl {
    db: &'static str,
    name: &'static str,
    base: u64,
    rows: u64,
}

const T: Tbl = Tbl {
    db: "shop",
    name: "t",
    base: 0,
    rows: ROWS,
};

impl Tbl {
    fn q(&self) -> String {
        format!("`{}`.`{}`", self.db, self.name)
    }

    /// One of gh-ost's tables for this one (`gho`, `ghc`, `del`).
    fn helper(&self, suffix: &str) -> String {
        format!("`{}`.`_{}_{suffix}`", self.db, self.name)
    }

    async fn create(&self, src: &MariaDb) {
        src.exec(&format!(
            "CREATE DATABASE IF NOT EXISTS {db}; USE {db};
             CREATE TABLE {q} (id BIGINT PRIMARY KEY, v INT NOT NULL, s VARCHAR(20) NOT NULL);
             INSERT INTO {q} SELECT {base} + seq, seq % 100, 'x' FROM seq_1_to_{rows};",
            db = self.db,
            q = self.q(),
            base = self.base,
            rows = self.rows
        ))
        .await;
    }
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
    start_task(dm, src, dst, name).await;
}

async fn start_task(dm: &Dm, src: &MariaDb, dst: &MariaDb, name: &str) {
    let tf = dm.file("task.yaml", &task_yaml(name, "all", "src1", dst, &["shop"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(dm, name, src).await;
}

/// One write on `t`, and what gh-ost's applier runs for it on the ghost table `ghost`.
fn write(n: u64, t: &Tbl, ghost: Option<&str>) -> String {
    let k = t.base + (n * 7919) % t.rows + 1;
    let gone = t.base + (n * 104_729) % t.rows + 1;
    let new = t.base + 1_000_000 + n;
    let (verb, rest) = match n % 3 {
        0 => ("UPDATE", format!("SET v = v + 1 WHERE id = {k}")),
        1 => (
            "INSERT INTO",
            format!("(id, v, s) VALUES ({new}, {n}, 'w')"),
        ),
        _ => ("DELETE FROM", format!("WHERE id = {gone}")),
    };
    let on_t = format!("{verb} {} {rest}", t.q());
    match ghost {
        None => on_t,
        Some(g) => {
            let verb = if verb == "INSERT INTO" {
                "REPLACE INTO"
            } else {
                verb
            };
            format!("START TRANSACTION; {on_t}; {verb} {g} {rest}; COMMIT")
        }
    }
}

/// The table gh-ost is changing and its ghost table, while the writer's changes reach it.
type Ghost = Arc<Mutex<Option<(String, String)>>>;

/// A writer on `tables` (in turn) until stopped. While `ghost` names a table and its ghost
/// table, each change of that table also reaches the ghost table (gh-ost's applier); holding
/// `ghost`'s lock holds the writer (gh-ost's cut-over lock).
fn spawn_writer(
    src: &MariaDb,
    stop: Arc<AtomicBool>,
    tables: Vec<Tbl>,
    ghost: Ghost,
) -> tokio::task::JoinHandle<u64> {
    let opts = src.opts();
    tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let t = &tables[n as usize % tables.len()];
            let g = ghost.lock().await;
            let mirror = g.as_ref().filter(|(real, _)| *real == t.q());
            c.query_drop(write(n, t, mirror.map(|(_, g)| g.as_str())))
                .await
                .unwrap();
            drop(g);
            n += 1;
        }
        n
    })
}

/// pt-online-schema-change (the real one) on `t`, as a DBA runs it.
fn pt_osc(src: &MariaDb, t: Tbl, alter: &'static str) -> tokio::task::JoinHandle<()> {
    let port = src.port;
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("pt-online-schema-change")
            .args([
                "--alter",
                alter,
                "--execute",
                "--no-version-check",
                "--recursion-method=none",
                "--chunk-size=2000",
                "--sleep=0.1",
            ])
            .arg(format!(
                "h=127.0.0.1,P={port},u=root,D={},t={}",
                t.db, t.name
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pt-online-schema-change failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    })
}

/// gh-ost's statements on a table, run step by step.
struct GhOst<'a> {
    src: &'a MariaDb,
    t: Tbl,
    ghost: Ghost,
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
        let (t, gho, ghc) = (self.t.q(), self.t.helper("gho"), self.t.helper("ghc"));
        self.src
            .exec(&format!(
                "create /* gh-ost */ table {gho} like {t};
                 alter /* gh-ost */ table {gho} {alter};
                 create /* gh-ost */ table {ghc} (
                   id bigint unsigned auto_increment,
                   last_update timestamp not null DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
                   hint varchar(64) charset ascii not null,
                   value varchar(4096) charset ascii not null,
                   primary key(id), unique key hint_uidx(hint)
                 ) auto_increment=256;
                 insert /* gh-ost */ into {ghc} (id, hint, value)
                   values (NULLIF(2, 0), 'state', 'GhostTableMigrated')
                   on duplicate key update last_update=NOW(), value=VALUES(value);"
            ))
            .await;
        *g = Some((t, gho));
    }

    /// The row copy, in chunks of the primary key, while the writer goes on.
    async fn copy(&self) {
        let (t, gho) = (self.t.q(), self.t.helper("gho"));
        let max: u64 = self.src.value(&format!("SELECT MAX(id) FROM {t}")).await;
        let mut c = self.src.conn().await;
        let mut lo = self.t.base;
        while lo <= max {
            c.query_drop(format!(
                "insert /* gh-ost */ ignore into {gho} (`id`, `v`, `s`)
                 (select `id`, `v`, `s` from {t} force index (`PRIMARY`)
                  where `id` >= {lo} and `id` < {} lock in share mode)",
                lo + 20_000
            ))
            .await
            .unwrap();
            lo += 20_000;
        }
    }

    async fn cut_over(&self, how: CutOver) {
        let (t, gho, del) = (self.t.q(), self.t.helper("gho"), self.t.helper("del"));
        // Writers wait, as gh-ost's LOCK TABLES makes them.
        let mut g = self.ghost.lock().await;
        match how {
            CutOver::Atomic => {
                let mut lock = self.src.conn().await;
                lock.query_drop(format!(
                    "create /* gh-ost */ table {del} (id int auto_increment primary key) \
                     engine=InnoDB comment='ghost-cut-over-sentry'"
                ))
                .await
                .unwrap();
                lock.query_drop(format!("lock /* gh-ost */ tables {t} write, {del} write"))
                    .await
                    .unwrap();
                let mut rename = self.src.conn().await;
                let sql = format!("rename /* gh-ost */ table {t} to {del}, {gho} to {t}");
                let renamed = tokio::spawn(async move { rename.query_drop(sql).await.unwrap() });
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
                lock.query_drop(format!("drop /* gh-ost */ table if exists {del}"))
                    .await
                    .unwrap();
                lock.query_drop("unlock tables").await.unwrap();
                renamed.await.unwrap();
            }
            CutOver::TwoStep => {
                self.src
                    .exec(&format!(
                        "rename /* gh-ost */ table {t} to {del};
                         rename /* gh-ost */ table {gho} to {t};"
                    ))
                    .await;
            }
        }
        *g = None;
        drop(g);
        self.src
            .exec(&format!(
                "drop /* gh-ost */ table if exists {};
                 drop /* gh-ost */ table if exists {del};",
                self.t.helper("ghc")
            ))
            .await;
    }

    /// Given up before the cut-over: its tables go, the table stays as it was.
    async fn abandon(&self) {
        let mut g = self.ghost.lock().await;
        *g = None;
        self.src
            .exec(&format!(
                "drop /* gh-ost */ table if exists {};
                 drop /* gh-ost */ table if exists {};",
                self.t.helper("gho"),
                self.t.helper("ghc")
            ))
            .await;
    }
}

/// gh-ost on `shop.t` with a writer on it: the tool, the writer's stop flag, the writer.
fn gh_ost_with_writer(src: &MariaDb) -> (GhOst<'_>, Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ghost: Ghost = Arc::new(Mutex::new(None));
    let writer = spawn_writer(src, stop.clone(), vec![T], ghost.clone());
    (GhOst { src, t: T, ghost }, stop, writer)
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
    T.create(&src).await;
    let dm = Dm::start();
    start(&dm, &src, &dst, "osc").await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&src, stop.clone(), vec![T], Arc::new(Mutex::new(None)));
    let before = rows_inserted(&dst).await;
    let pt = pt_osc(&src, T, "ADD COLUMN c INT NULL, ADD INDEX ic (c)");
    let status = wait_online_ddl(&dm, "osc").await;
    assert_eq!(status["tool"], "pt-online-schema-change", "{status}");
    assert_eq!(status["table"], "`shop`.`t`", "{status}");
    pt.await.unwrap();
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
    // (a third of its writes) and dm's own bookkeeping (an upsert of the apply position per
    // target transaction, at most one per write) did.
    let inserted = rows_inserted(&dst).await - before;
    eprintln!("pt-osc on {ROWS} rows: the target inserted {inserted} rows for {writes} writes");
    assert!(
        inserted < writes * 4 / 3 + 20_000,
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
    T.create(&src).await;
    let dm = Dm::start();
    start(&dm, &src, &dst, "gho").await;

    let (gh, stop, writer) = gh_ost_with_writer(&src);
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
    eprintln!(
        "gh-ost twice on {ROWS} rows: the target inserted {inserted} rows for {writes} writes"
    );
    assert!(
        inserted < writes * 4 / 3 + 20_000,
        "the target inserted {inserted} rows for {writes} writes (two copies of {ROWS} rows ran)"
    );
}

/// Read through the relay log, which keeps the tools' statements like any others.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_between_the_shadow_alter_and_the_cut_over_keeps_the_alter() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    Tbl { rows: 20_000, ..T }.create(&src).await;
    let mut dm = Dm::start();
    let sf = dm.file(
        "source.yaml",
        &format!("{}enable-relay: true\n", source_yaml("src1", &src)),
    );
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    start_task(&dm, &src, &dst, "gho").await;

    let (gh, stop, writer) = gh_ost_with_writer(&src);
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
    Tbl { rows: 20_000, ..T }.create(&src).await;
    let dm = Dm::start();
    start(&dm, &src, &dst, "gho").await;
    let def = show_create(&dst, "shop.t").await;

    let (gh, stop, writer) = gh_ost_with_writer(&src);
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

/// Waits until the subtask of `source` has applied the source's current position.
async fn wait_source_caught_up(dm: &Dm, task: &str, source: &str, src: &MariaDb) {
    let target = src.master_pos().await;
    wait_for("caught up", Duration::from_secs(120), || {
        let (ok, text) = dm.ctl(&["--output", "json", "query-status", task]);
        let v: serde_json::Value = match ok {
            true => serde_json::from_str(&text).unwrap(),
            false => return false,
        };
        let subtasks = v["subtasks"].as_array().cloned().unwrap_or_default();
        for s in &subtasks {
            assert_ne!(s["stage"], "paused", "{s}\n{}", dm.log());
        }
        subtasks.iter().any(|s| {
            s["source_id"] == source
                && position_reached(s["position"].as_str().unwrap_or(""), &target)
        })
    })
    .await;
}

async fn sorted_rows(db: &MariaDb, sql: &str) -> Vec<Vec<String>> {
    let rows: Vec<mysql_async::Row> = db.conn().await.query(sql).await.unwrap();
    let mut rows: Vec<Vec<String>> = rows.into_iter().map(text_row).collect();
    rows.sort();
    rows
}

/// 2 sources x 2 shards merged into one table under `mode`: on source 1 one shard is changed
/// by pt-online-schema-change and the other by gh-ost, on source 2 both by a plain ALTER;
/// the merged table takes the change once, through the shard coordination, rows equal the
/// union of the shards.
async fn shards_changed_by_online_schema_change_tools(mode: &str) {
    let (s1, s2, dst) = (MariaDb::start(1), MariaDb::start(2), MariaDb::start(3));
    let shard = |name, i: u64| Tbl {
        db: "shop",
        name,
        base: i * 10_000_000,
        rows: 20_000,
    };
    let shards = [
        [shard("t1", 0), shard("t2", 1)],
        [shard("t1", 2), shard("t2", 3)],
    ];
    for (src, tables) in [(&s1, &shards[0]), (&s2, &shards[1])] {
        for t in tables {
            t.create(src).await;
        }
    }
    let dm = Dm::start();
    dm.create_source("src1", &s1);
    dm.create_source("src2", &s2);
    let yaml = format!(
        "name: sh\ntask-mode: all\nshard-mode: {mode}\ntarget-database:\n  {}\nmysql-instances:\n{}\
         block-allow-list:\n  sel:\n    do-dbs: [\"shop\"]\n\
         routes:\n  merge:\n    schema-pattern: shop\n    table-pattern: \"t?\"\n    target-schema: merged\n    target-table: t\n",
        dst.yaml(),
        ["src1", "src2"]
            .iter()
            .map(|s| format!("  - source-id: {s}\n    block-allow-list: sel\n    route-rules: [merge]\n"))
            .collect::<String>()
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_source_caught_up(&dm, "sh", "src1", &s1).await;
    wait_source_caught_up(&dm, "sh", "src2", &s2).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ghost: Ghost = Arc::new(Mutex::new(None));
    let writers = [
        spawn_writer(&s1, stop.clone(), shards[0].to_vec(), ghost.clone()),
        spawn_writer(
            &s2,
            stop.clone(),
            shards[1].to_vec(),
            Arc::new(Mutex::new(None)),
        ),
    ];
    pt_osc(&s1, shards[0][0], "ADD COLUMN c INT NULL, ADD INDEX ic (c)")
        .await
        .unwrap();
    let gh = GhOst {
        src: &s1,
        t: shards[0][1],
        ghost,
    };
    gh.begin("add column c int null, add index ic (c)").await;
    gh.copy().await;
    gh.cut_over(CutOver::Atomic).await;
    s2.exec(
        "ALTER TABLE shop.t1 ADD COLUMN c INT NULL, ADD INDEX ic (c);
         ALTER TABLE shop.t2 ADD COLUMN c INT NULL, ADD INDEX ic (c);",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    wait_source_caught_up(&dm, "sh", "src1", &s1).await;
    wait_source_caught_up(&dm, "sh", "src2", &s2).await;

    let def = show_create(&dst, "merged.t").await;
    assert!(
        def.contains("`c` int(11) DEFAULT NULL") && def.contains("KEY `ic` (`c`)"),
        "{def}"
    );
    let mut want = Vec::new();
    for (src, tables) in [(&s1, &shards[0]), (&s2, &shards[1])] {
        for t in tables {
            want.extend(sorted_rows(src, &format!("SELECT id, v, s, c FROM {}", t.q())).await);
        }
    }
    want.sort();
    let got = sorted_rows(&dst, "SELECT id, v, s, c FROM merged.t").await;
    assert_eq!(got.len(), want.len(), "merged rows");
    assert!(
        got == want,
        "the merged table differs from the union of the shards"
    );
    let tables: Vec<String> = dst
        .conn()
        .await
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('shop', 'merged')")
        .await
        .unwrap();
    assert_eq!(tables, vec!["t".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn pessimistic_shards_changed_by_pt_osc_gh_ost_and_alter() {
    shards_changed_by_online_schema_change_tools("pessimistic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn optimistic_shards_changed_by_pt_osc_gh_ost_and_alter() {
    shards_changed_by_online_schema_change_tools("optimistic").await;
}
