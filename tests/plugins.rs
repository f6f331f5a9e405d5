//! WASM plugins against real MariaDB: the example plugins change exactly the rows they should
//! in both phases; plugins that loop, trap, hog memory or speak another ABI pause their task
//! with a clear error while the worker and other tasks go on.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `task_yaml` with `plugins` (name -> wasm) run on src1, with per-call limits.
fn task_with_plugins(name: &str, dst: &MariaDb, dbs: &[&str], plugins: &[(&str, &str)]) -> String {
    let mut y = task_yaml(name, "all", "src1", dst, dbs).replacen(
        "    block-allow-list: sel\n",
        &format!(
            "    block-allow-list: sel\n    plugins: [{}]\n",
            plugins
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        1,
    );
    y.push_str("plugins:\n");
    for (n, wasm) in plugins {
        y.push_str(&format!(
            "  {n}:\n    path: {}\n    timeout-ms: 300\n    memory-mib: 64\n",
            plugin_wasm(wasm).display()
        ));
    }
    y
}

/// A dm with source `src1` on `src` running task `name` over `dbs` with `plugins`.
fn start_plugin_task(
    src: &MariaDb,
    dst: &MariaDb,
    name: &str,
    dbs: &[&str],
    plugins: &[(&str, &str)],
) -> Dm {
    let dm = Dm::start();
    dm.create_source("src1", src);
    let tf = dm.file(
        &format!("{name}.yaml"),
        &task_with_plugins(name, dst, dbs, plugins),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    dm
}

#[tokio::test(flavor = "multi_thread")]
async fn soft_delete_and_pii_mask_change_exactly_their_rows_in_both_phases() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE app; USE app;
         CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(100), deleted TINYINT NOT NULL, name VARCHAR(20));
         INSERT INTO users SELECT seq, CONCAT('user', seq, '@example.com'), seq % 5 = 0, CONCAT('n', seq) FROM seq_1_to_300;",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    // The masker's column comes from its config (the plugin's own default is `email` too, so
    // a config naming another column shows that it is read: `name` stays as it is below).
    let yaml = task_with_plugins(
        "pl",
        &dst,
        &["app"],
        &[("soft-delete", "soft-delete"), ("pii", "pii-mask")],
    ) + "    config:\n      column: name\n";
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "pl", &src).await;
    // One transaction: its inserts, updates and deletes of the table reach the filters in
    // one call (a run of rows events), each row with its own operation.
    src.exec(
        "USE app; START TRANSACTION;
         INSERT INTO users SELECT seq, CONCAT('late', seq, '@example.com'), seq % 3 = 0, 'late' FROM seq_301_to_400;
         UPDATE users SET email = CONCAT('new', id, '@example.org') WHERE id % 7 = 1 AND deleted = 0;
         UPDATE users SET name = 'renamed' WHERE id BETWEEN 10 AND 20 AND deleted = 0;
         DELETE FROM users WHERE id % 11 = 0;
         COMMIT;",
    )
    .await;
    wait_caught_up(&dm, "pl", &src).await;

    let mut s = src.conn().await;
    let source: Vec<(i32, Option<String>, Option<String>)> = s
        .query("SELECT id, email, name FROM app.users WHERE deleted = 0 ORDER BY id")
        .await
        .unwrap();
    let expected: Vec<(i32, Option<String>, Option<String>)> = source
        .into_iter()
        .map(|(id, email, name)| {
            (
                id,
                email,
                name.map(|n| format!("{:016x}", fnv1a(n.as_bytes()))),
            )
        })
        .collect();
    let mut d = dst.conn().await;
    let target: Vec<(i32, Option<String>, Option<String>)> = d
        .query("SELECT id, email, name FROM app.users ORDER BY id")
        .await
        .unwrap();
    assert!(expected.len() > 250, "{}", expected.len());
    assert_eq!(target, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_that_loop_trap_or_hog_pause_their_task_and_nothing_else() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE bad; CREATE TABLE bad.t (id INT PRIMARY KEY, kind VARCHAR(10));
         CREATE DATABASE good; CREATE TABLE good.t (id INT PRIMARY KEY, v INT);",
    )
    .await;
    let dm = start_plugin_task(&src, &dst, "bad", &["bad"], &[("misbehave", "misbehave")]);
    let tf = dm.file(
        "good.yaml",
        &task_yaml("good", "all", "src1", &dst, &["good"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "bad", &src).await;

    // Each kind of failure has its own fix in the hint.
    for (i, (kind, says, fix)) in [
        (
            "spin",
            "ran longer than its deadline of 300 ms",
            "timeout-ms",
        ),
        ("boom", "panicked", "plugin check"),
        ("hog", "memory", "memory-mib"),
    ]
    .into_iter()
    .enumerate()
    {
        src.exec(&format!(
            "INSERT INTO bad.t VALUES ({i}, 'ok'); INSERT INTO bad.t VALUES ({}, '{kind}');
             INSERT INTO good.t VALUES ({i}, {i})",
            100 + i
        ))
        .await;
        let err = wait_paused(&dm, "bad").await;
        assert_eq!(err["code"], "DM-PLUGIN-6201", "{err}");
        let msg = err["message"].as_str().unwrap();
        eprintln!("{kind}: {msg}");
        assert!(
            msg.contains("plugin `misbehave`") && msg.contains(says),
            "{msg}"
        );
        assert!(
            msg.contains("`bad`.`t`") && err["position"].is_string(),
            "{err}"
        );
        assert!(err["hint"].as_str().unwrap().contains(fix), "{err}");
        // The other task goes on in the same worker.
        wait_for("the good task to apply", Duration::from_secs(30), || {
            futures_now(async {
                let mut c = dst.conn().await;
                let n: Option<i64> = c
                    .query_first(format!("SELECT v FROM good.t WHERE id = {i}"))
                    .await
                    .unwrap_or(None);
                n == Some(i as i64)
            })
        })
        .await;
        // Skipping the transaction of the bad row lets the task go on.
        dm.ctl_ok(&["binlog", "skip", "bad"]);
    }
    src.exec("INSERT INTO bad.t VALUES (500, 'fine')").await;
    wait_caught_up(&dm, "bad", &src).await;
    let mut c = dst.conn().await;
    let ids: Vec<i32> = c.query("SELECT id FROM bad.t ORDER BY id").await.unwrap();
    assert_eq!(ids, vec![0, 1, 2, 500]);
}

/// Single-row transactions of two tables, `ids` of each, in turns.
fn turns(ids: std::ops::RangeInclusive<i32>) -> String {
    ids.map(|i| {
        format!("INSERT INTO bad.t VALUES ({i}, 'ok'); INSERT INTO bad.u VALUES ({i}, 'ok');")
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_reaches_plugins_in_batches_and_a_failing_row_names_its_own_transaction() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE bad; CREATE TABLE bad.t (id INT PRIMARY KEY, kind VARCHAR(10));
         CREATE TABLE bad.u (id INT PRIMARY KEY, kind VARCHAR(10));",
    )
    .await;
    let dm = start_plugin_task(&src, &dst, "bad", &["bad"], &[("misbehave", "misbehave")]);
    wait_caught_up(&dm, "bad", &src).await;

    // A backlog while the task is paused: 300 transactions.
    dm.ctl_ok(&["pause-task", "bad"]);
    src.exec(&turns(1..=150)).await;
    dm.ctl_ok(&["resume-task", "bad"]);
    wait_caught_up(&dm, "bad", &src).await;
    // Counted since the task resumed: fewer calls than transactions, the backlog went to
    // the plugin in batches.
    let st = subtask_of(&dm, "bad", "src1").unwrap();
    let calls = st["row_filter_batches"].as_u64().unwrap();
    let txns = st["txns_applied"].as_u64().unwrap();
    eprintln!("{txns} transactions, {calls} plugin calls");
    assert!(
        txns >= 300 && calls * 4 < txns,
        "{txns} transactions, {calls} calls"
    );

    // Another, with a row the plugin panics on in the middle.
    dm.ctl_ok(&["pause-task", "bad"]);
    src.exec(&turns(151..=300)).await;
    src.exec("INSERT INTO bad.t VALUES (1000, 'boom')").await;
    let boom = src.master_pos().await;
    src.exec(&turns(301..=450)).await;
    dm.ctl_ok(&["resume-task", "bad"]);
    let mut err = serde_json::Value::Null;
    wait_for("the plugin's error", Duration::from_secs(60), || {
        let st = subtask_of(&dm, "bad", "src1").unwrap_or_default();
        err = st["last_error"].clone();
        err["code"] == "DM-PLUGIN-6201"
    })
    .await;
    // Its own position, not that of the batch it came in: `binlog skip` skips it alone.
    assert_eq!(err["position"], boom.as_str(), "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("panicked"),
        "{err}"
    );
    dm.ctl_ok(&["binlog", "skip", "bad"]);
    wait_caught_up(&dm, "bad", &src).await;

    let mut c = dst.conn().await;
    for table in ["t", "u"] {
        let ids: Vec<i32> = c
            .query(format!("SELECT id FROM bad.{table} ORDER BY id"))
            .await
            .unwrap();
        assert_eq!(ids, (1..=450).collect::<Vec<_>>(), "bad.{table}");
    }
    assert_eq!(src.value::<i64>("SELECT COUNT(*) FROM bad.t").await, 451);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_for_another_abi_is_refused() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE a; CREATE TABLE a.t (id INT PRIMARY KEY)")
        .await;
    let dm = start_plugin_task(&src, &dst, "abi", &["a"], &[("old", "old-abi")]);
    let err = wait_paused(&dm, "abi").await;
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("plugin `old` (load)") && msg.contains("built for plugin ABI 999"),
        "{msg}"
    );
    assert!(err["hint"].as_str().unwrap().contains("plugin"), "{err}");
}

#[test]
fn plugin_check_reports_hooks_and_runs_sample_rows() {
    let check = |wasm: &str| {
        std::process::Command::new(dm_bin())
            .args(["ctl", "plugin", "check"])
            .arg(plugin_wasm(wasm))
            .output()
            .unwrap()
    };
    let out = check("soft-delete");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("hooks: row filter"), "{text}");
    assert!(
        text.contains("'gone@example.com', 1, 'deleted'") && text.contains("drop"),
        "{text}"
    );
    let out = check("old-abi");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("built for plugin ABI 999"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swapped_plugin_takes_over_between_transactions_and_a_broken_one_is_refused() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE h; CREATE TABLE h.t (id INT PRIMARY KEY, txn INT NOT NULL, tag VARCHAR(4))")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    // The task runs the plugin from a file this test replaces while rows stream.
    let live = dm.dir.path().join("tag.wasm");
    let (a, b) = (plugin_wasm("tag-a"), plugin_wasm("tag-b"));
    std::fs::copy(&a, &live).unwrap();
    let yaml = task_with_plugins("hr", &dst, &["h"], &[("tag", "tag-a")])
        .replace(a.to_str().unwrap(), live.to_str().unwrap());
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "hr", &src).await;

    let opts = src.opts();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let writer = tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut txn = 0;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            // Five rows per transaction: one version must handle all of them.
            let rows: Vec<String> = (0..5)
                .map(|k| format!("({}, {txn}, 'src')", txn * 5 + k))
                .collect();
            c.query_drop(format!(
                "START TRANSACTION; INSERT INTO h.t VALUES {}; COMMIT",
                rows.join(",")
            ))
            .await
            .unwrap();
            txn += 1;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        txn
    });
    // Each swap waits until rows written after it carry the new version: no timing
    // assumption about how fast the reload is seen.
    for swap in 0..6 {
        let (next, tag) = if swap % 2 == 0 { (&b, "b") } else { (&a, "a") };
        let mark: i64 = dst.value("SELECT COALESCE(MAX(id), -1) FROM h.t").await;
        // Replaced the way deploy tools do: a new file renamed over the old one.
        let tmp = dm.dir.path().join("tag.wasm.tmp");
        std::fs::copy(next, &tmp).unwrap();
        std::fs::rename(&tmp, &live).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let seen: i64 = dst
                .value(&format!(
                    "SELECT COUNT(*) FROM h.t WHERE id > {mark} AND tag = '{tag}'"
                ))
                .await;
            if seen > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "version {tag} never applied after swap {swap}\n{}",
                dm.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let txns = writer.await.unwrap();
    wait_caught_up(&dm, "hr", &src).await;

    let mut c = dst.conn().await;
    let rows: Vec<(i32, i32, String)> = c
        .query("SELECT id, txn, tag FROM h.t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows.len(), txns as usize * 5, "every row once");
    assert!(rows.iter().enumerate().all(|(i, r)| r.0 == i as i32));
    let mut switches = 0;
    for txn in rows.chunks(5) {
        assert!(
            txn.iter().all(|r| r.2 == txn[0].2),
            "one transaction, two versions: {txn:?}"
        );
    }
    for w in rows.chunks(5).collect::<Vec<_>>().windows(2) {
        switches += usize::from(w[0][0].2 != w[1][0].2);
    }
    assert!(rows.iter().all(|r| r.2 == "a" || r.2 == "b"));
    assert!(switches >= 5, "only {switches} version changes seen");

    // A broken file: the previous version keeps running and query-status says why.
    std::fs::write(&live, b"not wasm").unwrap();
    wait_for(
        "the reload error in query-status",
        Duration::from_secs(20),
        || {
            dm.subtask("hr")
                .is_some_and(|s| s["warnings"].as_array().is_some_and(|w| !w.is_empty()))
        },
    )
    .await;
    let st = dm.subtask("hr").unwrap();
    assert!(
        st["warnings"][0].as_str().unwrap().contains("plugin `tag`"),
        "{st}"
    );
    src.exec("INSERT INTO h.t VALUES (5000, 0, 'src')").await;
    wait_caught_up(&dm, "hr", &src).await;
    let tag: Option<String> = c
        .query_first("SELECT tag FROM h.t WHERE id = 5000")
        .await
        .unwrap();
    assert!(matches!(tag.as_deref(), Some("a") | Some("b")), "{tag:?}");
    assert_eq!(dm.subtask("hr").unwrap()["stage"], "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_plugin_decides_shard_ddl_locks() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s1; CREATE TABLE s1.o_1 (id INT PRIMARY KEY, v INT);
         CREATE TABLE s1.o_2 (id INT PRIMARY KEY, v INT);
         INSERT INTO s1.o_1 VALUES (1, 1); INSERT INTO s1.o_2 VALUES (2, 2);",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let mut yaml = task_yaml("pol", "all", "src1", &dst, &["s1"]).replacen(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n    route-rules: [merge]\n",
        1,
    );
    yaml.push_str(&format!(
        "shard-mode: optimistic\nshard-ddl-policy: additive\nplugins:\n  additive:\n    path: {}\n\
         routes:\n  merge:\n    schema-pattern: s1\n    table-pattern: o_*\n    target-schema: m\n    target-table: o\n",
        plugin_wasm("additive-only").display()
    ));
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "pol", &src).await;

    // Additive: on the target at once, with the first shard's new row.
    src.exec("ALTER TABLE s1.o_1 ADD COLUMN note VARCHAR(10) NULL; INSERT INTO s1.o_1 VALUES (3, 3, 'x')")
        .await;
    wait_caught_up(&dm, "pol", &src).await;
    let mut c = dst.conn().await;
    let note: Option<Option<String>> = c
        .query_first("SELECT note FROM m.o WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(note, Some(Some("x".into())));
    // The merged table is the union of the shards.
    let mut s = src.conn().await;
    let union: Vec<(i32, i32)> = s
        .query("SELECT id, v FROM s1.o_1 UNION ALL SELECT id, v FROM s1.o_2 ORDER BY id")
        .await
        .unwrap();
    let merged: Vec<(i32, i32)> = c.query("SELECT id, v FROM m.o ORDER BY id").await.unwrap();
    assert_eq!(merged, union);
    // Not additive: the policy stops the shard and says why.
    src.exec("ALTER TABLE s1.o_2 DROP COLUMN v").await;
    let err = wait_paused(&dm, "pol").await;
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("policy `additive`: only additive changes"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_router_plugin_merges_order_shards_in_both_phases() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE shop; USE shop;
         CREATE TABLE orders_1 (id INT PRIMARY KEY, amount INT);
         CREATE TABLE orders_2 (id INT PRIMARY KEY, amount INT);
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20));
         INSERT INTO orders_1 SELECT seq, seq FROM seq_1_to_50;
         INSERT INTO orders_2 SELECT seq, seq FROM seq_101_to_150;
         INSERT INTO customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_10;",
    )
    .await;
    let dm = start_plugin_task(&src, &dst, "rt", &["shop"], &[("router", "orders-router")]);
    wait_caught_up(&dm, "rt", &src).await;
    src.exec(
        "USE shop; INSERT INTO orders_2 VALUES (151, 151); UPDATE orders_1 SET amount = 0 WHERE id = 1;
         DELETE FROM orders_2 WHERE id = 101; INSERT INTO customers VALUES (11, 'c11');",
    )
    .await;
    wait_caught_up(&dm, "rt", &src).await;
    let mut s = src.conn().await;
    let expected: Vec<(i32, i32)> = s
        .query("SELECT id, amount FROM shop.orders_1 UNION ALL SELECT id, amount FROM shop.orders_2 ORDER BY id")
        .await
        .unwrap();
    let mut d = dst.conn().await;
    let merged: Vec<(i32, i32)> = d
        .query("SELECT id, amount FROM shop.orders ORDER BY id")
        .await
        .unwrap();
    assert_eq!(merged, expected);
    let shards: Vec<String> = d
        .query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop' AND table_name LIKE 'orders_%'")
        .await
        .unwrap();
    assert!(shards.is_empty(), "{shards:?}");
    assert_same_table(&src, &dst, "shop.customers").await;
}

async fn assert_same_table(src: &MariaDb, dst: &MariaDb, table: &str) {
    let q = format!("SELECT id, name FROM {table} ORDER BY id");
    let a: Vec<(i32, String)> = src.conn().await.query(q.as_str()).await.unwrap();
    let b: Vec<(i32, String)> = dst.conn().await.query(q.as_str()).await.unwrap();
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_travel_with_the_task_and_update_task_changes_them() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE app; CREATE TABLE app.users (id INT PRIMARY KEY, email VARCHAR(100), deleted TINYINT NOT NULL, name VARCHAR(20));
         INSERT INTO app.users VALUES (1, 'a@x.org', 0, 'a'), (2, 'b@x.org', 1, 'b');",
    )
    .await;
    let mut dm = Dm::start();
    dm.create_source("src1", &src);
    // The task names its plugin by a path relative to the task file, in a directory that
    // goes away: after start-task the module lives in the metadata store.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(plugin_wasm("soft-delete"), dir.path().join("sd.wasm")).unwrap();
    let base = task_yaml("up", "all", "src1", &dst, &["app"]);
    let with = |names: &str, plugins: &str| {
        base.replacen(
            "    block-allow-list: sel\n",
            &format!("    block-allow-list: sel\n    plugins: [{names}]\n"),
            1,
        ) + "plugins:\n"
            + plugins
    };
    let tf = dir.path().join("task.yaml");
    std::fs::write(&tf, with("sd", "  sd:\n    path: sd.wasm\n")).unwrap();
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "up", &src).await;
    drop(dir);
    dm.kill9();
    dm.restart();
    src.exec("INSERT INTO app.users VALUES (3, 'c@x.org', 1, 'c'), (4, 'd@x.org', 0, 'd')")
        .await;
    wait_caught_up(&dm, "up", &src).await;
    let mut c = dst.conn().await;
    let ids: Vec<i32> = c
        .query("SELECT id FROM app.users ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        ids,
        vec![1, 4],
        "the soft-delete plugin runs from the metadata store"
    );

    // update-task adds the PII masker: rows from then on are masked too.
    let tf = dm.file(
        "task2.yaml",
        &with(
            "sd, pii",
            &format!(
                "  sd:\n    path: {}\n  pii:\n    path: {}\n",
                plugin_wasm("soft-delete").display(),
                plugin_wasm("pii-mask").display()
            ),
        ),
    );
    dm.ctl_ok(&["update-task", tf.to_str().unwrap()]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    src.exec("INSERT INTO app.users VALUES (5, 'e@x.org', 0, 'e'), (6, 'f@x.org', 1, 'f')")
        .await;
    wait_caught_up(&dm, "up", &src).await;
    let rows: Vec<(i32, String)> = c
        .query("SELECT id, email FROM app.users ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0], (1, "a@x.org".to_string()));
    assert_eq!(rows[2], (5, format!("{:016x}", fnv1a(b"e@x.org"))));
    let (ok, text) = dm.ctl(&[
        "update-task",
        dm.file("bad.yaml", &base.replace("name: up", "name: other"))
            .to_str()
            .unwrap(),
    ]);
    assert!(!ok && text.contains("does not exist"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_task_file_applies_to_the_running_task() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE app; CREATE TABLE app.users (id INT PRIMARY KEY, deleted TINYINT NOT NULL)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let plain = task_yaml("ed", "all", "src1", &dst, &["app"]);
    let tf = dm.file("task.yaml", &plain);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    src.exec("INSERT INTO app.users VALUES (1, 0), (2, 1)")
        .await;
    wait_caught_up(&dm, "ed", &src).await;

    // The soft-delete plugin is added to the file: it runs from the next rows on.
    dm.file(
        "task.yaml",
        &task_with_plugins("ed", &dst, &["app"], &[("sd", "soft-delete")]),
    );
    let mut c = dst.conn().await;
    let mut n = 10;
    wait_for("the edit to apply", Duration::from_secs(30), || {
        n += 1;
        futures_now(async {
            src.exec(&format!("INSERT INTO app.users VALUES ({n}, 1)"))
                .await;
            wait_caught_up(&dm, "ed", &src).await;
            let seen: Option<i64> = c
                .query_first(format!("SELECT COUNT(*) FROM app.users WHERE id = {n}"))
                .await
                .unwrap();
            seen == Some(0)
        })
    })
    .await;

    // A broken edit: the task runs on as it was, and query-status says why.
    dm.file("task.yaml", &(plain.clone() + "  unknown-field: 1\n"));
    wait_for("the warning", Duration::from_secs(20), || {
        let (_, text) = dm.ctl(&["--output", "json", "query-status", "ed"]);
        text.contains("is not applied")
    })
    .await;
    src.exec("INSERT INTO app.users VALUES (100, 1), (101, 0)")
        .await;
    wait_caught_up(&dm, "ed", &src).await;
    let ids: Vec<i32> = c
        .query("SELECT id FROM app.users WHERE id >= 100")
        .await
        .unwrap();
    assert_eq!(ids, vec![101], "the plugin still runs");
    // The target holds the rows from before the edit applied, and later only those not
    // soft-deleted.
    let mut s = src.conn().await;
    let expected: Vec<(i32, i32)> = s
        .query(format!(
            "SELECT id, deleted FROM app.users WHERE id < {n} OR deleted = 0 ORDER BY id"
        ))
        .await
        .unwrap();
    let target: Vec<(i32, i32)> = c
        .query("SELECT id, deleted FROM app.users ORDER BY id")
        .await
        .unwrap();
    assert_eq!(target, expected);
}

/// The master watches a task file only when it holds what the caller sent: a caller that
/// names a file it did not write (here, another task's file) gets nothing from it, and edits
/// of it change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_master_watches_no_file_a_caller_merely_names() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let other = dm.file("other.yaml", "not: the task\n");
    let body = dm_core::api::types::FileBody {
        file: other.display().to_string(),
        content: task_yaml("named", "all", "src1", &dst, &["app"]),
        remove_meta: false,
        skip_precheck: false,
        start_time: None,
        plugins: Default::default(),
    };
    api_client(&dm.addr).start_task(&body).await.unwrap();
    src.exec("INSERT INTO app.t VALUES (1)").await;
    wait_caught_up(&dm, "named", &src).await;
    // Watched, this edit would be applied (or its error shown): it is neither.
    dm.file("other.yaml", "not: the task either\n");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, text) = dm.ctl(&["--output", "json", "query-status", "named"]);
    assert!(
        !text.contains("is not applied") && !text.contains("other.yaml"),
        "{text}"
    );
    assert!(
        dm.log().contains("not watching the task file"),
        "{}",
        dm.log()
    );
    assert_same(&src, &dst, &["app"]).await;

    // A FIFO (or a device) named as the file is not even opened: reading it would block.
    dm.ctl_ok(&["stop-task", "named"]);
    let fifo = dm.dir.path().join("task.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let body = dm_core::api::types::FileBody {
        file: fifo.display().to_string(),
        ..body
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        api_client(&dm.addr).start_task(&body),
    )
    .await
    .expect("start-task naming a FIFO answers")
    .unwrap();
    src.exec("INSERT INTO app.t VALUES (2)").await;
    wait_caught_up(&dm, "named", &src).await;
    assert_same(&src, &dst, &["app"]).await;
}
