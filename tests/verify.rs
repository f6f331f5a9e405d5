//! `dm ctl verify`: equal on a clean migration (also while rows stream), finds rows changed
//! behind dm's back in the target, prints them with the fixing statements, `--fix` repairs.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_and_fixes_what_changed_behind_dms_back() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE v; USE v;
         CREATE TABLE t (id INT PRIMARY KEY, val INT, s VARCHAR(30), d DECIMAL(10,2), n INT NULL);
         INSERT INTO t SELECT seq, seq * 3, CONCAT('row ', seq), seq / 7, IF(seq % 5 = 0, NULL, seq)
           FROM seq_1_to_30000;
         CREATE TABLE c (a VARCHAR(10) NOT NULL, b INT NOT NULL, v TEXT, PRIMARY KEY (a, b));
         INSERT INTO c SELECT CHAR(97 + seq % 5), seq, REPEAT('x', seq % 7) FROM seq_1_to_500;
         CREATE TABLE nokey (x INT, y VARCHAR(5));
         INSERT INTO nokey VALUES (1, 'a'), (2, 'b'), (2, 'b');
         CREATE TABLE w (id INT PRIMARY KEY, v INT);
         ANALYZE TABLE t, c;",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("vt", "all", "src1", &dst, &["v"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "vt", &src).await;

    // Equal, also while rows stream into another table.
    let stop = Arc::new(AtomicBool::new(false));
    let opts = src.opts();
    let flag = stop.clone();
    let writer = tokio::spawn(async move {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut i = 0;
        while !flag.load(Ordering::Relaxed) {
            c.query_drop(format!("INSERT INTO v.w VALUES ({i}, {i})"))
                .await
                .unwrap();
            i += 1;
        }
    });
    let out = dm.ctl_ok(&["verify", "vt"]);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        out.contains("v.t") && out.contains("equal") && !out.contains("DIFFERENT"),
        "{out}"
    );

    dst.exec(
        "UPDATE v.t SET val = -1 WHERE id = 12345; DELETE FROM v.t WHERE id = 7;
         INSERT INTO v.t VALUES (999999, 0, 'extra', 0, NULL); UPDATE v.c SET v = 'changed' WHERE a = 'b' AND b = 1;
         DELETE FROM v.nokey WHERE x = 1",
    )
    .await;
    let (ok, out) = dm.ctl(&["verify", "vt"]);
    eprintln!("{out}");
    assert!(!ok, "{out}");
    for want in [
        "DIFFERENT",
        "REPLACE INTO `v`.`t`",
        "12345",
        "DELETE FROM `v`.`t` WHERE `id` <=> 999999",
        "'changed'",
        "--fix",
    ] {
        assert!(out.contains(want), "missing {want}:\n{out}");
    }
    let json = dm.ctl_ok(&["--output", "json", "verify", "vt", "--fix"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let t = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table"] == "v.t")
        .unwrap();
    assert_eq!(t["differences"], 3, "{t}");
    assert_eq!(t["fixed"], true);
    assert!(t["chunks"].as_u64().unwrap() >= 3, "{t}");
    let out = dm.ctl_ok(&["verify", "vt"]);
    assert!(!out.contains("DIFFERENT"), "{out}");
    assert_same(&src, &dst, &["v"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn continuous_validation_notices_a_change_behind_dms_back() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE cv; CREATE TABLE cv.t (id INT PRIMARY KEY, v INT);
         USE cv; INSERT INTO cv.t SELECT seq, seq FROM seq_1_to_2000",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("cv", "all", "src1", &dst, &["cv"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "cv", &src).await;
    let (ok, out) = dm.ctl(&["validation", "status", "cv"]);
    assert!(!ok && out.contains("validation start"), "{out}");
    dm.ctl_ok(&["validation", "start", "cv", "--interval", "1"]);
    let status = |dm: &Dm| -> serde_json::Value {
        serde_json::from_str(&dm.ctl_ok(&["--output", "json", "validation", "status", "cv"]))
            .unwrap()
    };
    wait_for("a first equal run", Duration::from_secs(30), || {
        status(&dm)["equal"] == true
    })
    .await;
    assert_eq!(status(&dm)["rows"], 2000);

    // Rows keep streaming; a row changed in the target behind dm's back is noticed.
    src.exec("INSERT INTO cv.t VALUES (5000, 5000)").await;
    dst.exec("UPDATE cv.t SET v = -1 WHERE id = 42").await;
    wait_for(
        "a run that finds the change",
        Duration::from_secs(30),
        || status(&dm)["differences"] == 1,
    )
    .await;
    let out = dm.ctl_ok(&["validation", "status", "cv"]);
    assert!(
        out.contains("DIFFERENT") && out.contains("REPLACE INTO `cv`.`t`"),
        "{out}"
    );
    assert!(
        metrics_of(&dm.addr)
            .await
            .contains("dm_validation_differences{task=\"cv\"} 1"),
        "metrics"
    );
    dst.exec("UPDATE cv.t SET v = 42 WHERE id = 42").await;
    wait_for("equal again", Duration::from_secs(30), || {
        status(&dm)["equal"] == true
    })
    .await;

    // Stopped: no more runs.
    dm.ctl_ok(&["validation", "stop", "cv"]);
    let runs = status_runs(&dm);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        status_runs(&dm) <= runs + 1,
        "at most the run under way ends"
    );
    assert_same(&src, &dst, &["cv"]).await;
}

fn status_runs(dm: &Dm) -> u64 {
    let (_, out) = dm.ctl(&["--output", "json", "validation", "status", "cv"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v["runs"].as_u64())
        .unwrap_or(0)
}
