//! One standalone process per data dir, and an idle one stays idle: no busy loop, no
//! rewriting of its metadata file while nothing changes.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (in parentheses, which may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_on_the_data_dir_refuses_and_idle_stays_idle() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE idle; CREATE TABLE idle.t (id INT PRIMARY KEY); INSERT INTO idle.t VALUES (1)")
        .await;
    let dm = Dm::start();

    // Another dm on the same data dir (another port) refuses to start and names the holder.
    let other = dm.file(
        "other.yaml",
        &std::fs::read_to_string(dm.dir.path().join("dm.yaml"))
            .unwrap()
            .replace(&dm.addr, &format!("127.0.0.1:{}", free_port())),
    );
    let out = Command::new(dm_bin())
        .args(["standalone", "-c"])
        .arg(&other)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second dm started: {err}");
    let pid = dm.pid().unwrap().to_string();
    assert!(err.contains("in use") && err.contains(&pid), "{err}");

    // A task reading through a relay log, caught up: then nothing happens for 30 s.
    let sf = dm.file(
        "source.yaml",
        &format!("{}enable-relay: true\n", source_yaml("src1", &src)),
    );
    dm.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("idle", "all", "src1", &dst, &["idle"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "idle", &src).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let meta = dm.dir.path().join("data/meta.json");
    let written = std::fs::metadata(&meta).unwrap().modified().unwrap();
    let pid = dm.pid().unwrap();
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let cpu = cpu_seconds(pid) - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    println!("idle dm: {cpu:.2} CPU seconds in {secs:.0} s");
    assert!(
        cpu < 0.5,
        "idle dm used {cpu:.2} CPU seconds in {secs:.0} s"
    );
    assert_eq!(
        std::fs::metadata(&meta).unwrap().modified().unwrap(),
        written,
        "meta.json rewritten while nothing changed"
    );
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&meta), 0o600);
    assert_eq!(mode(&dm.dir.path().join("data")), 0o700);
    assert_same(&src, &dst, &["idle"]).await;
}
