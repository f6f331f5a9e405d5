//! A cluster of real processes (masters with their own etcd members, workers) against real
//! MariaDB: the leader and busy workers are killed or frozen while rows stream; every scenario
//! ends with a row-by-row comparison.

mod common;

use common::cluster::{etcdctl, etcdctl_at, Cluster, WORKER_TTL};
use common::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Inserts, updates and deletes rows of `<schema>.t` until stopped; returns how many writes.
fn spawn_writer(db: &MariaDb, schema: &str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let opts = db.opts();
    let schema = schema.to_string();
    tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let k = (n * 7919) % 2000 + 1;
            let sql = match n % 4 {
                0 => format!("INSERT INTO {schema}.t VALUES ({}, {n}, 'new')", 10_000 + n),
                1 => format!("UPDATE {schema}.t SET v = v + 1, s = 'upd' WHERE id = {k}"),
                2 => format!("DELETE FROM {schema}.t WHERE id = {}", k + 1),
                _ => format!(
                    "INSERT INTO {schema}.t VALUES ({k}, 0, 'back') ON DUPLICATE KEY UPDATE v = v + 7"
                ),
            };
            c.query_drop(sql).await.unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        n
    })
}

fn two_source_task(dst: &MariaDb) -> String {
    format!(
        "name: ha\ntask-mode: all\ntarget-database:\n  {}\nmysql-instances:\n  - source-id: src1\n    block-allow-list: sel\n  - source-id: src2\n    block-allow-list: sel\nblock-allow-list:\n  sel:\n    do-dbs: [a, b]\n",
        dst.yaml()
    )
}

/// Two sources, `a.t` on the first and `b.t` on the second, each holding `rows` rows, and an
/// empty target.
async fn two_sources_with_t(rows: u32) -> (MariaDb, MariaDb, MariaDb) {
    let (s1, s2, dst) = (MariaDb::start(1), MariaDb::start(2), MariaDb::start(3));
    for (db, schema) in [(&s1, "a"), (&s2, "b")] {
        db.exec(&format!(
            "CREATE DATABASE {schema}; USE {schema};
             CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, s VARCHAR(64));
             INSERT INTO t SELECT seq, seq, 'init' FROM seq_1_to_{rows};"
        ))
        .await;
    }
    (s1, s2, dst)
}

fn applied(c: &Cluster, source: &str) -> u64 {
    c.subtask("ha", source)
        .and_then(|s| s["rows_applied"].as_u64())
        .unwrap_or(0)
}

/// Waits until `source` runs on a worker other than `not` and applies rows there; returns
/// the worker and the seconds it took from `since`.
async fn wait_moved(c: &Cluster, source: &str, not: &str, since: Instant) -> (String, f64) {
    let mut worker = String::new();
    wait_for(
        &format!("{source} to run elsewhere"),
        Duration::from_secs(60),
        || {
            let Some(st) = c.subtask("ha", source) else {
                return false;
            };
            assert_ne!(st["stage"], "paused", "{st}\n{}", c.logs());
            worker = st["worker"].as_str().unwrap_or("").to_string();
            st["stage"] == "running"
                && worker != not
                && !worker.is_empty()
                && st["rows_applied"].as_u64().unwrap_or(0) > 0
        },
    )
    .await;
    (worker, since.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_and_busy_workers_loses_and_duplicates_nothing() {
    let (s1, s2, dst) = two_sources_with_t(2000).await;
    let mut c = Cluster::start(3, 3);
    c.wait_leader().await;
    c.create_source("src1", &s1);
    c.create_source("src2", &s2);
    // src2 is read through a relay log, which moves with the source (step 3).
    c.ctl_ok(&["start-relay", "src2"]);
    let tf = c.file("task.yaml", &two_source_task(&dst));
    c.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let stop = Arc::new(AtomicBool::new(false));
    let w1 = spawn_writer(&s1, "a", stop.clone());
    let w2 = spawn_writer(&s2, "b", stop.clone());
    for src in ["src1", "src2"] {
        wait_for(&format!("{src} applying"), Duration::from_secs(60), || {
            c.subtask("ha", src).is_some_and(|s| {
                assert_ne!(s["stage"], "paused", "{s}");
                s["phase"] == "incremental" && s["rows_applied"].as_u64().unwrap_or(0) > 0
            })
        })
        .await;
    }

    // 1. kill -9 the leader: another master leads, the workers go on.
    let old_leader = c.wait_leader().await;
    let t = Instant::now();
    c.master(&old_leader).kill9();
    let mut new_leader = None;
    wait_for("a new leader", Duration::from_secs(30), || {
        new_leader = c.leader().filter(|l| *l != old_leader);
        new_leader.is_some()
    })
    .await;
    eprintln!(
        "leader {old_leader} killed: {} leads after {:.1} s",
        new_leader.unwrap(),
        t.elapsed().as_secs_f64()
    );
    let before = applied(&c, "src1");
    wait_for(
        "src1 applying under the new leader",
        Duration::from_secs(30),
        || applied(&c, "src1") > before,
    )
    .await;

    // 2. kill -9 the worker running src1: the idle worker takes it over. Before, its own
    // /metrics shows what it applies.
    let busy = c.bound_worker("src1").unwrap();
    let metrics = metrics_of(&c.worker(&busy).status_addr()).await;
    assert!(
        metrics.contains("dm_rows_applied_total{task=\"") && metrics.contains("source=\"src1\""),
        "{metrics}"
    );
    let t = Instant::now();
    c.worker(&busy).kill9();
    let (took_over, secs) = wait_moved(&c, "src1", &busy, t).await;
    eprintln!("worker {busy} killed: {took_over} applies src1 rows after {secs:.1} s");

    // 3. Freeze the worker running src2 past its lease: the restarted worker takes it over,
    //    and the frozen one, woken up, must not write any more.
    Cluster::restart(c.worker(&busy));
    wait_for(
        "the restarted worker to be free",
        Duration::from_secs(30),
        || {
            c.json(&["list-member", "--worker"]).is_some_and(|v| {
                v["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["name"] == busy.as_str() && w["stage"] == "free")
            })
        },
    )
    .await;
    let frozen = c.bound_worker("src2").unwrap();
    let t = Instant::now();
    c.worker(&frozen).signal("-STOP");
    let (took_over, secs) = wait_moved(&c, "src2", &frozen, t).await;
    eprintln!("worker {frozen} frozen: {took_over} applies src2 rows after {secs:.1} s");
    tokio::time::sleep(Duration::from_secs(WORKER_TTL)).await;
    c.worker(&frozen).signal("-CONT");
    wait_for(
        "the frozen worker to notice",
        Duration::from_secs(20),
        || c.worker(&frozen).log().contains("lease lost"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Stop writing, catch up, compare.
    stop.store(true, Ordering::Relaxed);
    let writes = w1.await.unwrap() + w2.await.unwrap();
    c.wait_caught_up("ha", "src1", &s1).await;
    c.wait_caught_up("ha", "src2", &s2).await;
    let rows = assert_same(&s1, &dst, &["a"]).await + assert_same(&s2, &dst, &["b"]).await;
    eprintln!("{writes} writes, {rows} rows compared");

    // query-status tells the truth: each subtask runs on the worker bound to its source.
    for src in ["src1", "src2"] {
        let st = c.subtask("ha", src).unwrap();
        assert_eq!(st["stage"], "running", "{st}");
        assert_eq!(
            st["worker"].as_str(),
            c.bound_worker(src).as_deref(),
            "{st}"
        );
    }
    let frozen_log = c.worker(&frozen).log();
    assert!(
        frozen_log.contains("subtask stopped: this worker's lease ran out"),
        "{frozen_log}"
    );
    // The relay of src2 runs on the worker that took src2 over.
    let sources = c.json(&["operate-source", "show"]).unwrap();
    let src2 = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source_id"] == "src2")
        .unwrap()
        .clone();
    assert_eq!(src2["relay"]["worker"], src2["worker"], "{src2}");
    assert_eq!(src2["relay"]["stage"], "running", "{src2}");
    assert!(c.worker(&took_over).log().contains("relay started"));

    // 4. With two of three masters gone there is no quorum, and the API says so.
    let leader = c.wait_leader().await;
    c.master(&leader).kill9();
    let (ok, text) = c.ctl(&["query-status"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("DM-META-2002") && text.contains("quorum"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_wait_for_a_worker_and_the_full_phase_moves_chunk_by_chunk() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE m; USE m;
         CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, s VARCHAR(100));
         INSERT INTO t SELECT seq, seq, REPEAT('x', 80) FROM seq_1_to_40000;
         ANALYZE TABLE t;",
    )
    .await;
    // The one cluster on plain HTTP without tokens and etcd without TLS (loopback).
    let mut c = Cluster::start_plain(1, 0);
    c.wait_leader().await;
    c.create_source("src1", &src);
    let yaml = task_tuned("mv", "all", &dst, &["m"], &["rows: 300", "threads: 2"], &[]);
    let tf = c.file("task.yaml", &yaml);
    c.ctl_ok(&["start-task", tf.to_str().unwrap()]);

    // No worker: the subtask waits, and says why.
    let st = c.subtask("mv", "src1").unwrap();
    assert_eq!(st["stage"], "waiting", "{st}");
    assert!(st["last_error"]["message"]
        .as_str()
        .unwrap()
        .contains("no worker"));

    c.add_worker("w1");
    c.add_worker("w2");
    let stop = Arc::new(AtomicBool::new(false));
    let mover = spawn_mover(&src, stop.clone());
    loop {
        if done_chunks(&dst, "mv").await.len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = c.bound_worker("src1").unwrap();
    c.worker(&first).kill9();
    let done = done_chunks(&dst, "mv").await;
    let total: u64 = dst
        .conn()
        .await
        .query_first("SELECT COUNT(*) FROM dm_meta.mv_chunk")
        .await
        .unwrap()
        .unwrap();
    assert!((done.len() as u64) < total, "killed after the copy");
    eprintln!(
        "worker {first} killed with {} of {total} chunks done",
        done.len()
    );

    wait_for(
        "the incremental phase on the other worker",
        Duration::from_secs(120),
        || {
            c.subtask("mv", "src1").is_some_and(|s| {
                assert_ne!(s["stage"], "paused", "{s}\n{}", c.logs());
                s["phase"] == "incremental" && s["worker"] != first.as_str()
            })
        },
    )
    .await;
    // Chunks finished on the first worker were not copied again on the second.
    let after = done_chunks(&dst, "mv").await;
    for (k, at) in &done {
        assert_eq!(after.get(k), Some(at), "chunk {k:?} was copied again");
    }
    stop.store(true, Ordering::Relaxed);
    let writes = mover.await.unwrap();

    // Every worker gone: the subtask waits; a new worker picks it up from the checkpoint.
    let second = c.bound_worker("src1").unwrap();
    c.worker(&second).kill9();
    wait_for(
        "the subtask to wait for a worker",
        Duration::from_secs(30),
        || {
            c.subtask("mv", "src1")
                .is_some_and(|s| s["stage"] == "waiting")
        },
    )
    .await;
    src.exec("UPDATE m.t SET v = -1 WHERE id % 100 = 0").await;
    c.add_worker("w3");
    wait_for("w3 to run the subtask", Duration::from_secs(60), || {
        c.subtask("mv", "src1")
            .is_some_and(|s| s["worker"] == "w3" && s["stage"] == "running")
    })
    .await;
    c.wait_caught_up("mv", "src1", &src).await;
    let rows = assert_same(&src, &dst, &["m"]).await;
    eprintln!("{writes} writes during the copy, {rows} rows compared");
}

/// A source with `a.t` holding `rows` rows, and an empty target.
async fn source_with_a_t(rows: u32) -> (MariaDb, MariaDb) {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(&format!(
        "CREATE DATABASE a; USE a; CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, s VARCHAR(64));
         INSERT INTO t SELECT seq, seq, 'init' FROM seq_1_to_{rows};"
    ))
    .await;
    (src, dst)
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_move_leaders_step_down_and_members_go_offline_on_request() {
    let (src, dst) = source_with_a_t(2000).await;
    let mut c = Cluster::start(3, 2);
    c.wait_leader().await;
    c.create_source("src1", &src);
    let yaml = task_yaml("mt", "all", "src1", &dst, &["a"]);
    let tf = c.file("task.yaml", &yaml);
    c.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&src, "a", stop.clone());
    let on = |c: &Cluster, w: &str| {
        c.subtask("mt", "src1").is_some_and(|s| {
            assert_ne!(s["stage"], "paused", "{s}");
            s["worker"] == w && s["stage"] == "running" && s["phase"] == "incremental"
        })
    };
    let mut first = String::new();
    wait_for("the subtask to run", Duration::from_secs(60), || {
        first = c.bound_worker("src1").unwrap_or_default();
        !first.is_empty() && on(&c, &first)
    })
    .await;

    // transfer-source: the old worker stops, the free one takes over from the checkpoint.
    let other = if first == "w1" { "w2" } else { "w1" };
    c.ctl_ok(&["transfer-source", "src1", other]);
    assert_eq!(c.bound_worker("src1").as_deref(), Some(other));
    wait_for(
        "the subtask on the other worker",
        Duration::from_secs(60),
        || on(&c, other),
    )
    .await;
    let (ok, text) = c.ctl(&["transfer-source", "src1", "nobody"]);
    assert!(!ok && text.contains("not running"), "{text}");

    // operate-leader evict: another master leads, and the evicted one does not come back
    // until cancel-evict.
    let leader = c.wait_leader().await;
    c.ctl_ok(&["operate-leader", "evict"]);
    let mut now = String::new();
    wait_for("another leader", Duration::from_secs(90), || {
        now = c.leader().unwrap_or_default();
        !now.is_empty() && now != leader
    })
    .await;
    c.ctl_ok(&["operate-leader", "evict"]);
    wait_for("a third leader", Duration::from_secs(90), || {
        c.leader().is_some_and(|l| l != leader && l != now)
    })
    .await;
    let out = c.ctl_ok(&["operate-leader", "cancel-evict"]);
    assert!(out.contains(&leader) && out.contains(&now), "{out}");

    // offline-member: refused for a running worker, done for a stopped one.
    let (ok, text) = c.ctl(&["offline-member", "--worker", "--name", &first]);
    assert!(!ok && text.contains("is running"), "{text}");
    c.worker(&first).kill9();
    wait_for("the worker to be offline", Duration::from_secs(30), || {
        c.ctl(&["offline-member", "--worker", "--name", &first]).0
    })
    .await;
    let members = c.ctl_ok(&["list-member", "--worker"]);
    assert!(!members.contains(&first), "{members}");

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    c.wait_caught_up("mt", "src1", &src).await;
    assert_same(&src, &dst, &["a"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_serves_its_api_and_etcd_over_tls_to_authenticated_callers_only() {
    let (src, dst) = source_with_a_t(500).await;
    // The worker finds etcd by asking the masters over HTTPS.
    let c = Cluster::start(3, 1);
    let leader = c.wait_leader().await;
    // The source is read as a user with a password, which must never be readable in etcd.
    let password = "Pw-never-in-etcd-7731";
    src.exec(&format!(
        "CREATE USER dmsrc@'%' IDENTIFIED BY '{password}'; GRANT ALL ON *.* TO dmsrc@'%'"
    ))
    .await;
    let sf = c.file(
        "src1.yaml",
        &source_yaml("src1", &src)
            .replace("user: root", "user: dmsrc")
            .replace("password: \"\"", &format!("password: \"{password}\"")),
    );
    c.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    // Through the follower: it forwards to the leader over HTTPS.
    let follower = c
        .masters
        .iter()
        .position(|m| m.name != leader)
        .map(|i| c.master_addrs[i].clone())
        .unwrap();
    let tf = c.file("task.yaml", &task_yaml("tl", "all", "src1", &dst, &["a"]));
    let (ok, out) = c.ctl_at(&follower, &["start-task", tf.to_str().unwrap()]);
    assert!(ok, "{out}");
    // A body over the API's limit stops at the follower, with the API's error.
    let big = c.file(
        "big.yaml",
        &format!(
            "# {}\n{}",
            "x".repeat(9 << 20),
            task_yaml("big", "all", "src1", &dst, &["a"])
        ),
    );
    let (ok, out) = c.ctl_at(&follower, &["start-task", big.to_str().unwrap()]);
    assert!(!ok && out.contains("over 8 MiB"), "{out}");
    src.exec("INSERT INTO a.t VALUES (501, 501, 'after')").await;
    c.wait_caught_up("tl", "src1", &src).await;
    assert_same(&src, &dst, &["a"]).await;
    // Plain HTTP is not served.
    let (ok, out) = run_ctl(&format!("http://{follower}"), &["query-status"]);
    assert!(!ok, "{out}");
    // Without the token, nothing: not through the follower, not at the leader.
    let ca = c.tls_ca.as_ref().unwrap().display().to_string();
    for addr in &c.master_addrs {
        let (ok, out) = run_ctl(addr, &["--tls-ca", &ca, "pause-task", "tl"]);
        assert!(!ok && out.contains("DM-API-7301"), "{out}");
    }

    // etcd: TLS only, and only for certificates signed by the deployment's CA.
    let url = etcd_client_url(&c, &leader).unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let (ok, out) = etcdctl(&c, &url, false, &["get", "--prefix", "/dm/", "--keys-only"]);
    assert!(!ok, "etcd answered a client without a certificate:\n{out}");
    let (ok, out) = etcdctl(
        &c,
        &url.replace("https", "http"),
        false,
        &["get", "/dm/leader"],
    );
    assert!(!ok, "etcd answered plain http:\n{out}");
    let (ok, dump) = etcdctl(&c, &url, true, &["get", "--prefix", "/dm/"]);
    assert!(ok && dump.contains("src1"), "{dump}");
    assert!(
        !dump.contains(password),
        "the source password is readable in etcd"
    );
    for p in c.masters.iter().chain(&c.workers) {
        assert!(
            !p.log().contains(password),
            "{}'s log holds the password",
            p.name
        );
    }
    // Where etcd is (and its user) is told to admins (workers), not to viewers or strangers.
    let client = |token: Option<&str>| {
        let how = dm_core::api::Connect {
            tls_ca: c.tls_ca.as_deref(),
            token,
            ..Default::default()
        };
        dm_core::api::Client::new(&c.master_addrs[0], &how).unwrap()
    };
    match client(None).etcd_endpoints().await {
        Err(dm_core::api::ClientError::Refused { status: 401, .. }) => {}
        other => panic!("etcd's whereabouts without a token: {other:?}"),
    }
    let found = client(c.token.as_deref()).etcd_endpoints().await.unwrap();
    assert!(found.client_cert_required, "{found:?}");
    assert!(
        found
            .ca
            .as_deref()
            .is_some_and(|ca| ca.contains("BEGIN CERTIFICATE")),
        "{found:?}"
    );
}

/// A worker frozen (SIGSTOP) while it holds a TRUNCATE it has not run yet (a failpoint
/// holds it 4 s before every DDL): the source moves, the new owner runs the TRUNCATE and
/// the rows written after it; woken up, the old worker must not run its TRUNCATE.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_worker_never_runs_the_ddl_it_held() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO f.t VALUES (1, 1), (2, 2), (3, 3)",
    )
    .await;
    let mut c = Cluster::start(1, 0);
    for w in ["w1", "w2"] {
        c.add_worker_with(w, &[("DM_FAILPOINTS", "before-ddl=4000")]);
    }
    c.wait_leader().await;
    c.create_source("src1", &src);

    // A second process under a live worker's name is refused (after waiting out a lease
    // an earlier run of it might have left).
    wait_for("w1 registered", Duration::from_secs(30), || {
        c.json(&["list-member", "--worker"])
            .is_some_and(|v| v.to_string().contains("\"w1\""))
    })
    .await;
    let dup = c.file(
        "w1-dup.yaml",
        &std::fs::read_to_string(c.dir.path().join("w1.yaml"))
            .unwrap()
            .replace("w1-data", "w1-dup-data")
            .replace("status-addr: ", "status-addr: 127.0.0.1:0 #"),
    );
    let out = std::process::Command::new(dm_bin())
        .args(["worker", "-c"])
        .arg(&dup)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("a worker named `w1` is already running"),
        "{err}"
    );

    let tf = c.file("task.yaml", &task_yaml("fz", "all", "src1", &dst, &["f"]));
    c.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    c.wait_caught_up("fz", "src1", &src).await;
    let old = c.bound_worker("src1").unwrap();

    src.exec("TRUNCATE TABLE f.t").await;
    wait_for("the DDL held", Duration::from_secs(10), || {
        c.worker(&old).log().contains("failpoint: pausing")
    })
    .await;
    c.worker(&old).signal("-STOP");
    wait_for("the source moved", Duration::from_secs(30), || {
        c.bound_worker("src1").is_some_and(|w| w != old)
    })
    .await;
    src.exec("INSERT INTO f.t VALUES (10, 10), (11, 11)").await;
    c.wait_caught_up("fz", "src1", &src).await;
    assert_same(&src, &dst, &["f"]).await;

    c.worker(&old).signal("-CONT");
    wait_for("the old worker to notice", Duration::from_secs(20), || {
        c.worker(&old).log().contains("lease")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        assert_same(&src, &dst, &["f"]).await,
        2,
        "the rows written after the TRUNCATE are still there"
    );
}

/// A worker frozen (SIGSTOP) for 20 s in the middle of its full phase, with a chunk
/// transaction open on the target (a failpoint holds each chunk 1.5 s before its commit):
/// the new owner ends that session, so its first chunk commits within seconds, not when
/// the frozen process wakes; the end state is equal.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_worker_does_not_hold_up_the_full_phase() {
    let (src, dst) = source_with_a_t(40_000).await;
    let mut c = Cluster::start(1, 0);
    c.add_worker_with("w1", &[("DM_FAILPOINTS", "before-chunk-commit=1500")]);
    c.wait_leader().await;
    c.create_source("src1", &src);
    let yaml = task_tuned(
        "fr",
        "all",
        &dst,
        &["a"],
        &["rows: 2000", "threads: 2"],
        &[],
    );
    let tf = c.file("task.yaml", &yaml);
    c.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_for("two chunks copied", Duration::from_secs(60), || {
        futures_now(done_chunks(&dst, "fr")).len() >= 2
    })
    .await;
    // Right after a chunk commit the next ones are open and held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = dst.conn().await;
    let frozen_at: String = conn.query_first("SELECT NOW(6)").await.unwrap().unwrap();
    c.worker("w1").signal("-STOP");
    let t = Instant::now();
    c.add_worker("w2");
    let first_commit = loop {
        let secs: Option<f64> = conn
            .exec_first(
                "SELECT TIMESTAMPDIFF(MICROSECOND, ?, MIN(finished_at)) / 1e6 FROM dm_meta.fr_chunk WHERE finished_at > ?",
                (&frozen_at, &frozen_at),
            )
            .await
            .unwrap()
            .flatten();
        if let Some(s) = secs {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{}", c.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "w1 frozen mid full phase: the new owner's first chunk committed after {first_commit:.1} s"
    );
    assert!(
        first_commit < 8.0,
        "the new owner waited {first_commit:.1} s for the frozen worker's chunk"
    );
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(t.elapsed())).await;
    c.worker("w1").signal("-CONT");
    c.wait_caught_up("fr", "src1", &src).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_same(&src, &dst, &["a"]).await;
}

/// The etcd member (of a master's embedded etcd) that etcd elected its leader.
fn etcd_leader(c: &Cluster) -> Option<String> {
    for m in &c.masters {
        let url = etcd_client_url(c, &m.name)?;
        let (ok, out) = etcdctl(c, &url, true, &["endpoint", "status", "-w", "json"]);
        if !ok {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        let status = &v[0]["Status"];
        if status["leader"].is_u64() && status["leader"] == status["header"]["member_id"] {
            return Some(m.name.clone());
        }
    }
    None
}

/// The client URL of the etcd member of master `name`, from its config.
fn etcd_client_url(c: &Cluster, name: &str) -> Option<String> {
    let config = std::fs::read_to_string(c.dir.path().join(format!("{name}.yaml"))).ok()?;
    config
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-url: "))
        .map(str::to_string)
}

/// kill -9 of the master whose etcd member leads etcd, five times while rows are written:
/// etcd's election must not cost any worker its lease (renewals go to every member at once,
/// so the first member that has a leader again renews it).
#[tokio::test(flavor = "multi_thread")]
async fn workers_keep_their_leases_through_etcd_elections() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE a; CREATE TABLE a.t (id BIGINT PRIMARY KEY, v INT NOT NULL, s VARCHAR(64)); \
         USE a; INSERT INTO a.t SELECT seq, seq, 'init' FROM seq_1_to_2000",
    )
    .await;
    let mut c = Cluster::start(3, 0);
    // The default lease: 3 s.
    c.worker_ttl = 3;
    c.add_worker("w1");
    c.add_worker("w2");
    c.wait_leader().await;
    c.create_source("src1", &src);
    let tf = c.file("task.yaml", &task_yaml("el", "all", "src1", &dst, &["a"]));
    c.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    c.wait_caught_up("el", "src1", &src).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&src, "a", stop.clone());
    for round in 1..=5 {
        let mut victim = None;
        wait_for("an etcd leader", Duration::from_secs(30), || {
            victim = etcd_leader(&c);
            victim.is_some()
        })
        .await;
        let victim = victim.unwrap();
        eprintln!("round {round}: killing {victim}, whose etcd member leads etcd");
        c.master(&victim).kill9();
        wait_for_or_show(
            "a new etcd leader",
            Duration::from_secs(30),
            || etcd_leader(&c).is_some_and(|l| l != victim),
            || c.logs(),
        )
        .await;
        c.wait_leader().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Cluster::restart(c.master(&victim));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    c.wait_caught_up("el", "src1", &src).await;
    assert_same(&src, &dst, &["a"]).await;
    for w in ["w1", "w2"] {
        let log = c.worker(w).log();
        assert!(!log.contains("lease lost"), "{w} lost its lease:\n{log}");
    }
}

/// An etcd the test runs itself (not a master's member); killed with the test.
struct OwnEtcd(std::process::Child);

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Masters on an existing etcd that serves TLS and has authentication on: they reach it as an
/// etcd user (read-write on `/dm/` only) whose password the master config holds encrypted;
/// the workers get the CA and the user from the masters. Without the user, etcd gives nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_runs_on_an_existing_etcd_with_tls_and_a_user() {
    let (src, dst) = source_with_a_t(300).await;
    let tls = TlsFiles::generate();
    let dir = tempfile::Builder::new()
        .prefix("dm-test-cluster-etcd-")
        .tempdir()
        .unwrap();
    let (client, peer) = (free_port(), free_port());
    let url = format!("https://127.0.0.1:{client}");
    let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
    let _etcd = OwnEtcd(
        std::process::Command::new(find_binary("etcd"))
            .arg("--name=e1")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=e1=http://127.0.0.1:{peer}"))
            .arg(format!("--cert-file={}", tls.cert.display()))
            .arg(format!("--key-file={}", tls.key.display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let ca = format!("--cacert={}", tls.ca.display());
    let as_root = |args: &[&str]| {
        let mut all = vec![ca.clone(), "--user=root:Root-pw-1".to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        etcdctl_at(&url, &all)
    };
    wait_for("etcd answers", Duration::from_secs(30), || {
        etcdctl_at(&url, &[ca.clone(), "endpoint".into(), "health".into()]).0
    })
    .await;
    let etcd_password = "Etcd-pw-never-in-clear-5521";
    for step in [
        vec!["user", "add", "root", "--new-user-password=Root-pw-1"],
        vec!["role", "add", "dm"],
        vec![
            "role",
            "grant-permission",
            "dm",
            "--prefix=true",
            "readwrite",
            "/dm/",
        ],
        vec![
            "user",
            "add",
            "dm",
            &format!("--new-user-password={etcd_password}"),
        ],
        vec!["user", "grant-role", "dm", "dm"],
        vec!["auth", "enable"],
    ] {
        let (ok, out) = as_root(&step);
        assert!(ok, "etcdctl {step:?}: {out}");
    }

    let ca_path = tls.ca.clone();
    let url_for_config = url.clone();
    let c = Cluster::start_on_etcd(2, 1, tls, &|key_file| {
        let out = std::process::Command::new(dm_bin())
            .args(["ctl", "encrypt", "--key-file"])
            .arg(key_file)
            .arg(etcd_password)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let sealed = String::from_utf8(out.stdout).unwrap().trim().to_string();
        format!(
            "etcd:\n  endpoints: [{url_for_config}]\n  tls:\n    ca: {}\n  username: dm\n  password: \"{sealed}\"\n",
            ca_path.display()
        )
    });
    c.wait_leader().await;
    c.create_source("src1", &src);
    let tf = c.file("task.yaml", &task_yaml("ex", "all", "src1", &dst, &["a"]));
    c.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    src.exec("INSERT INTO a.t VALUES (301, 301, 'after')").await;
    c.wait_caught_up("ex", "src1", &src).await;
    assert_same(&src, &dst, &["a"]).await;

    // The master config and the logs hold the etcd password encrypted only.
    for m in &c.masters {
        let cfg = std::fs::read_to_string(c.dir.path().join(format!("{}.yaml", m.name))).unwrap();
        assert!(cfg.contains("password: \"enc:") && !cfg.contains(etcd_password));
    }
    for p in c.masters.iter().chain(&c.workers) {
        assert!(
            !p.log().contains(etcd_password),
            "{}'s log holds the password",
            p.name
        );
    }
    // No user, no data; dm's user sees dm's keys.
    let (ok, out) = etcdctl_at(
        &url,
        &[ca.clone(), "get".into(), "--prefix".into(), "/dm/".into()],
    );
    assert!(!ok, "etcd answered without a user:\n{out}");
    let (ok, out) = etcdctl_at(
        &url,
        &[
            ca.clone(),
            format!("--user=dm:{etcd_password}"),
            "get".into(),
            "--prefix".into(),
            "/dm/alive/worker/".into(),
        ],
    );
    assert!(ok && out.contains("w1"), "{out}");
}

/// Fewer workers than sources: one worker runs both sources (TiDB DM would leave one waiting),
/// and a second worker that joins gets a source moved to it on request (`transfer-source` to
/// a busy worker is allowed too). Both end equal.
#[tokio::test(flavor = "multi_thread")]
async fn one_worker_runs_two_sources_and_a_source_moves_to_a_busy_worker() {
    let (s1, s2, dst) = two_sources_with_t(500).await;
    let mut c = Cluster::start_plain(1, 1);
    c.wait_leader().await;
    c.create_source("src1", &s1);
    c.create_source("src2", &s2);
    let tf = c.file("task.yaml", &two_source_task(&dst));
    c.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    for src in ["src1", "src2"] {
        wait_for(
            &format!("{src} incremental"),
            Duration::from_secs(60),
            || {
                c.subtask("ha", src).is_some_and(|s| {
                    assert_ne!(s["stage"], "paused", "{s}");
                    s["phase"] == "incremental" && s["worker"] == "w1"
                })
            },
        )
        .await;
    }
    assert_eq!(c.bound_worker("src1").as_deref(), Some("w1"));
    assert_eq!(c.bound_worker("src2").as_deref(), Some("w1"));

    // A second worker: nothing moves by itself; src2 moves on request, and back to the busy w1.
    c.add_worker("w2");
    wait_for("w2 alive", Duration::from_secs(30), || {
        c.json(&["list-member", "--worker"]).is_some_and(|v| {
            v["workers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["name"] == "w2")
        })
    })
    .await;
    assert_eq!(c.bound_worker("src2").as_deref(), Some("w1"));
    c.ctl_ok(&["transfer-source", "src2", "w2"]);
    assert_eq!(c.bound_worker("src2").as_deref(), Some("w2"));
    c.ctl_ok(&["transfer-source", "src2", "w1"]);
    assert_eq!(c.bound_worker("src2").as_deref(), Some("w1"));

    s1.exec("INSERT INTO a.t VALUES (1000, 1, 'after')").await;
    s2.exec("UPDATE b.t SET v = v + 1 WHERE id < 100").await;
    c.wait_caught_up("ha", "src1", &s1).await;
    c.wait_caught_up("ha", "src2", &s2).await;
    assert_same(&s1, &dst, &["a"]).await;
    assert_same(&s2, &dst, &["b"]).await;
}

/// A second master with a name a live master has (a copied config) refuses to start, and
/// the first goes on leading with its own address.
#[tokio::test(flavor = "multi_thread")]
async fn a_master_with_the_name_of_a_live_one_refuses_to_start() {
    let c = Cluster::start_plain(1, 0);
    assert_eq!(c.wait_leader().await, "m1");
    let first = std::fs::read_to_string(c.dir.path().join("m1.yaml")).unwrap();
    let line = |key: &str| {
        first
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap()
            .split_once(": ")
            .unwrap()
            .1
            .to_string()
    };
    let copy = c.dir.path().join("m1-copy.yaml");
    std::fs::write(
        &copy,
        format!(
            "name: m1\nmaster-addr: 127.0.0.1:{}\nelection-ttl: 2\netcd:\n  endpoints: [{}]\nsecret-key-path: {}\n",
            free_port(),
            line("client-url:"),
            line("secret-key-path:")
        ),
    )
    .unwrap();
    let mut second = std::process::Command::new(dm_bin())
        .args(["master", "-c"])
        .arg(&copy)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the second m1 still runs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        !status.success() && err.contains("a master named `m1` is already running"),
        "{status}: {err}"
    );
    let members = c.json(&["list-member", "--master"]).unwrap();
    assert_eq!(c.leader().as_deref(), Some("m1"), "{members}");
    assert!(
        members.to_string().contains(&c.master_addrs[0]),
        "{members}"
    );
}
