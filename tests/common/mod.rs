//! Test harness: private MariaDB servers on free loopback ports with their own datadirs, the
//! real `dm` binary, and a row-by-row comparison of source and target. Nothing is installed
//! here: `scripts/setup.sh` does that; the harness finds the binaries and fails with a hint.
#![allow(dead_code)]

pub mod cluster;
mod fixtures;

#[allow(unused_imports)]
pub use fixtures::fixtures;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn find_binary(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
    ]) {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: run scripts/setup.sh to install what the tests need (MariaDB, etcd)");
}

/// A port free now and never handed out before in this process: tests run in parallel, and a
/// port one test's server has not bound yet is free for the next caller too (two servers on one
/// port: one dies, the other gets both tests' connections).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A datadir made by mariadb-install-db, copied for each server (bootstrapping several at
/// once in one /tmp collides). Shared by all test processes and runs of the same MariaDB
/// build: made in a private dir, then renamed into place (whoever renames first wins).
fn template_datadir() -> &'static Path {
    static TEMPLATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let server = std::fs::metadata(find_binary("mariadbd")).unwrap();
        let stamp = server
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let shared = std::env::temp_dir().join(format!("dm-test-template-{user}-{stamp}"));
        if shared.join("data").exists() {
            return shared;
        }
        let dir = tempfile::Builder::new()
            .prefix("dm-test-template-new-")
            .tempdir()
            .unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let out = Command::new(find_binary("mariadb-install-db"))
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--user={user}"))
            .arg(format!("--tmpdir={}", tmp.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Fails when another process got there first: then its copy is used.
        let made = dir.keep();
        if std::fs::rename(&made, &shared).is_err() {
            let _ = std::fs::remove_dir_all(made);
        }
        shared
    })
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from.join("data"))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a of the template datadir failed");
}

pub struct MariaDb {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    server_id: u32,
    /// Server options beyond the common ones (kept for `start_again`).
    extra: Vec<String>,
    /// CA file the server's certificate is signed by, when it requires TLS.
    pub tls_ca: Option<PathBuf>,
}

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it, as PEM files.
pub struct TlsFiles {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates signed by the CA: (cert, key) with CN `dm-admin` and `stranger`.
    pub admin: (PathBuf, PathBuf),
    pub stranger: (PathBuf, PathBuf),
}

impl TlsFiles {
    pub fn generate() -> TlsFiles {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = tempfile::Builder::new()
            .prefix("dm-test-tls-")
            .tempdir()
            .unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dm test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let client = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            (
                write(&format!("{cn}-cert.pem"), cert.pem()),
                write(&format!("{cn}-key.pem"), key.serialize_pem()),
            )
        };
        TlsFiles {
            ca: write("ca.pem", ca.pem()),
            cert: write("server-cert.pem", cert.pem()),
            key: write("server-key.pem", key.serialize_pem()),
            admin: client("dm-admin"),
            stranger: client("stranger"),
            dir,
        }
    }
}

fn spawn_mariadbd(dir: &Path, port: u16, server_id: u32, extra: &[String]) -> Child {
    let data = dir.join("data");
    let tmp = dir.join("tmp");
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("mysqld.log"))
        .unwrap();
    Command::new(find_binary("mariadbd"))
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.join("s.sock").display()))
        .arg(format!("--pid-file={}", dir.join("s.pid").display()))
        .arg(format!("--port={port}"))
        .arg(format!("--tmpdir={}", tmp.display()))
        .arg(format!("--server-id={server_id}"))
        .args([
            "--bind-address=127.0.0.1",
            "--log-bin=mysql-bin",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=64M",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ])
        .arg(format!("--user={user}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl MariaDb {
    pub fn start(server_id: u32) -> MariaDb {
        Self::start_with(server_id, vec![], None)
    }

    /// A server that accepts only TLS connections, with `tls`'s certificate.
    pub fn start_tls(server_id: u32, tls: &TlsFiles) -> MariaDb {
        let extra = vec![
            format!("--ssl-ca={}", tls.ca.display()),
            format!("--ssl-cert={}", tls.cert.display()),
            format!("--ssl-key={}", tls.key.display()),
            "--require-secure-transport=ON".to_string(),
        ];
        Self::start_with(server_id, extra, Some(tls.ca.clone()))
    }

    fn start_with(server_id: u32, extra: Vec<String>, tls_ca: Option<PathBuf>) -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("dm-test-mariadb-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        copy_dir(template_datadir(), &data);
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let port = free_port();
        let child = spawn_mariadbd(dir.path(), port, server_id, &extra);
        let db = MariaDb {
            port,
            dir,
            child,
            server_id,
            extra,
            tls_ca,
        };
        db.wait_ready();
        db
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "MariaDB did not start; see its log in {}",
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Shuts the server down cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Starts the stopped server again on the same port and datadir.
    pub fn start_again(&mut self) {
        self.child = spawn_mariadbd(self.dir.path(), self.port, self.server_id, &self.extra);
        self.wait_ready();
    }

    pub fn opts(&self) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some("root"))
            .prefer_socket(false)
            .ssl_opts(self.tls_ca.as_ref().map(|ca| {
                mysql_async::SslOpts::default()
                    .with_root_certs(vec![ca.clone().into()])
                    .with_disable_built_in_roots(true)
            }))
            .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"])
            .into()
    }

    pub async fn conn(&self) -> Conn {
        dm_core::install_crypto_provider();
        Conn::new(self.opts())
            .await
            .expect("connect to test MariaDB")
    }

    pub async fn exec(&self, sql: &str) {
        let mut c = self.conn().await;
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of the first row `sql` returns.
    pub async fn value<T: mysql_async::prelude::FromValue + Send + 'static>(&self, sql: &str) -> T {
        let mut c = self.conn().await;
        c.query_first(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }

    /// `mysql-bin.000001:1234` of the last written event.
    pub async fn master_pos(&self) -> String {
        let mut c = self.conn().await;
        let row: Row = c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
        format!(
            "{}:{}",
            row.get::<String, _>(0).unwrap(),
            row.get::<u64, _>(1).unwrap()
        )
    }

    pub fn yaml(&self) -> String {
        let security = match &self.tls_ca {
            Some(ca) => format!("\n  security:\n    ssl-ca: {}", ca.display()),
            None => String::new(),
        };
        format!(
            "host: 127.0.0.1\n  port: {}\n  user: root\n  password: \"\"{security}",
            self.port
        )
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `dm standalone` process.
pub struct Dm {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
    starts: u32,
    /// Environment of the next starts (e.g. `DM_FAILPOINTS`).
    pub env: Vec<(String, String)>,
}

pub fn dm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dm")
}

impl Dm {
    pub fn start() -> Dm {
        Self::start_with("")
    }

    /// `dm standalone` with `DM_FAILPOINTS=spec`: a debug build pauses at those steps.
    pub fn start_with_failpoints(spec: &str) -> Dm {
        let mut dm = Self::start();
        dm.kill9();
        dm.env = vec![("DM_FAILPOINTS".into(), spec.into())];
        dm.restart();
        dm
    }

    /// `dm standalone` with `extra` lines appended to its dm.yaml.
    pub fn start_with(extra: &str) -> Dm {
        let dir = tempfile::Builder::new()
            .prefix("dm-test-dm-")
            .tempdir()
            .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        std::fs::write(
            dir.path().join("dm.yaml"),
            format!(
                "data-dir: {}\nmaster-addr: {addr}\nlog-level: info\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut dm = Dm {
            dir,
            addr,
            child: None,
            starts: 0,
            env: vec![],
        };
        dm.restart();
        dm
    }

    /// Starts the process (again), keeping its data dir.
    pub fn restart(&mut self) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.path().join(format!("dm-{}.log", self.starts))).unwrap();
        let child = Command::new(dm_bin())
            .args(["standalone", "-c"])
            .arg(self.dir.path().join("dm.yaml"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&self.addr).is_err() {
            assert!(Instant::now() < deadline, "dm did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// `operate-source create` for the MariaDB `db` as source `id` (GTID on).
    pub fn create_source(&self, id: &str, db: &MariaDb) {
        let sf = self.file("source.yaml", &source_yaml(id, db));
        self.ctl_ok(&["operate-source", "create", sf.to_str().unwrap()]);
    }

    /// Writes `text` to a file in the dm dir and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs `dm ctl <args>`; returns (success, stdout + stderr).
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        run_ctl(&self.addr, args)
    }

    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.ctl(args);
        assert!(ok, "dm ctl {args:?} failed:\n{text}");
        text
    }

    /// query-status of a task as JSON: the first subtask.
    pub fn subtask(&self, task: &str) -> Option<serde_json::Value> {
        let (ok, text) = self.ctl(&["--output", "json", "query-status", task]);
        if !ok {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get("subtasks")?.as_array()?.first().cloned()
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.starts {
            s += &std::fs::read_to_string(self.dir.path().join(format!("dm-{i}.log")))
                .unwrap_or_default();
        }
        s
    }
}

impl Drop for Dm {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn source_yaml(id: &str, db: &MariaDb) -> String {
    format!(
        "source-id: {id}\nenable-gtid: true\nfrom:\n  {}\n",
        db.yaml()
    )
}

pub fn task_yaml(
    name: &str,
    mode: &str,
    source_id: &str,
    target: &MariaDb,
    do_dbs: &[&str],
) -> String {
    format!(
        "name: {name}\ntask-mode: {mode}\ntarget-database:\n  {}\nmysql-instances:\n  - source-id: {source_id}\n    block-allow-list: sel\nblock-allow-list:\n  sel:\n    do-dbs: [{}]\n",
        target.yaml(),
        do_dbs.iter().map(|d| format!("\"{d}\"")).collect::<Vec<_>>().join(", ")
    )
}

/// `task_yaml` for source `src1` with tuning: `mydumper` and `syncer` are YAML lines of a
/// `mydumpers` and a `syncers` entry (left out when empty).
pub fn task_tuned(
    name: &str,
    mode: &str,
    dst: &MariaDb,
    dbs: &[&str],
    mydumper: &[&str],
    syncer: &[&str],
) -> String {
    let mut y = task_yaml(name, mode, "src1", dst, dbs);
    for (section, key, lines) in [
        ("mydumpers", "mydumper-config-name", mydumper),
        ("syncers", "syncer-config-name", syncer),
    ] {
        if lines.is_empty() {
            continue;
        }
        y = y.replacen(
            "    block-allow-list: sel\n",
            &format!("    block-allow-list: sel\n    {key}: tuned\n"),
            1,
        );
        y.push_str(&format!("{section}:\n  tuned:\n"));
        for l in lines {
            y.push_str(&format!("    {l}\n"));
        }
    }
    y
}

pub async fn wait_for<F: FnMut() -> bool>(what: &str, timeout: Duration, f: F) {
    wait_for_or_show(what, timeout, f, String::new).await
}

/// As `wait_for`; a timeout also prints what `show` says (logs, state).
pub async fn wait_for_or_show<F: FnMut() -> bool>(
    what: &str,
    timeout: Duration,
    mut f: F,
    show: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            show()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the task's applied position reaches the source's current position.
pub async fn wait_caught_up(dm: &Dm, task: &str, src: &MariaDb) {
    wait_position(dm, task, &src.master_pos().await).await
}

/// `file:pos` as (file number, offset), to compare positions of one server.
fn binlog_order(at: &str) -> Option<(u64, u64)> {
    let (file, pos) = at.rsplit_once(':')?;
    let index = file.rsplit_once('.')?.1.parse().ok()?;
    Some((index, pos.parse().ok()?))
}

/// Whether a status `position` (`file:pos (gtid ...)`) is at `target` (`file:pos`) or past it:
/// once the source is quiet, events that change nothing (a rotation, MariaDB's binlog
/// checkpoints written after the target was read) move it on.
pub fn position_reached(position: &str, target: &str) -> bool {
    let at = position.split(' ').next().unwrap_or("");
    at == target || binlog_order(target).is_some_and(|t| binlog_order(at).is_some_and(|a| a > t))
}

/// Waits until the task's applied position reaches `target` (`file:pos`, `position_reached`).
/// It gives up only once
/// the task has made no progress (position, rows copied or applied) for two minutes: a slow
/// machine that is still applying a big transaction is not a failure, a stuck task is.
pub async fn wait_position(dm: &Dm, task: &str, target: &str) {
    let stall = Duration::from_secs(120);
    let mut deadline = Instant::now() + stall;
    let mut last_progress = None;
    loop {
        if let Some(st) = dm.subtask(task) {
            if let Some(e) = st.get("last_error").filter(|e| !e.is_null()) {
                if st["stage"] == "paused" {
                    panic!("task paused: {e}\nlog:\n{}", dm.log());
                }
            }
            let pos = st["position"].as_str().unwrap_or("");
            if position_reached(pos, target) {
                return;
            }
            let progress = (
                pos.to_string(),
                st["rows_applied"].clone(),
                st["rows_loaded"].clone(),
            );
            if last_progress.as_ref() != Some(&progress) {
                last_progress = Some(progress);
                deadline = Instant::now() + stall;
            }
            assert!(
                Instant::now() < deadline,
                "not caught up with {target}, no progress for {stall:?}: {st}\nlog:\n{}",
                dm.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every base table of `schemas` on the source, in order.
pub async fn tables_of(db: &MariaDb, schemas: &[&str]) -> Vec<(String, String)> {
    let mut c = db.conn().await;
    let list = schemas
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    c.query(format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE='BASE TABLE' AND TABLE_SCHEMA IN ({list}) ORDER BY 1, 2"
    ))
    .await
    .unwrap()
}

async fn dump(c: &mut Conn, schema: &str, table: &str) -> (String, Vec<Vec<Value>>) {
    let create: (String, String) = c
        .query_first(format!("SHOW CREATE TABLE `{schema}`.`{table}`"))
        .await
        .unwrap()
        .unwrap();
    // Every column by name: `SELECT *` leaves invisible columns out.
    let columns: Vec<String> = c
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .unwrap();
    let list = columns
        .iter()
        .map(|n| format!("`{}`", n.replace('`', "``")))
        .collect::<Vec<_>>()
        .join(",");
    let order = (1..=columns.len())
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let rows: Vec<Row> = c
        .query(format!(
            "SELECT {list} FROM `{schema}`.`{table}` ORDER BY {order}"
        ))
        .await
        .unwrap();
    // The definition without AUTO_INCREMENT counters, which may legitimately differ.
    let def = create
        .1
        .split(' ')
        .filter(|w| !w.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ");
    (def, rows.into_iter().map(|r| r.unwrap()).collect())
}

/// Compares every table of `schemas` row by row (text protocol: exact server renderings);
/// panics on the first difference with both rows.
pub async fn assert_same(src: &MariaDb, dst: &MariaDb, schemas: &[&str]) -> usize {
    let src_tables = tables_of(src, schemas).await;
    let dst_tables = tables_of(dst, schemas).await;
    assert_eq!(src_tables, dst_tables, "table lists differ");
    let (mut a, mut b) = (src.conn().await, dst.conn().await);
    let mut total = 0;
    for (s, t) in &src_tables {
        let (def_a, rows_a) = dump(&mut a, s, t).await;
        let (def_b, rows_b) = dump(&mut b, s, t).await;
        assert_eq!(def_a, def_b, "definition of {s}.{t} differs");
        for (i, (ra, rb)) in rows_a.iter().zip(&rows_b).enumerate() {
            assert_eq!(ra, rb, "{s}.{t}: row {i} differs");
        }
        assert_eq!(
            rows_a.len(),
            rows_b.len(),
            "{s}.{t}: {} rows in the source, {} in the target",
            rows_a.len(),
            rows_b.len()
        );
        total += rows_a.len();
    }
    total
}

/// (table, chunk) -> finished_at of the chunks done so far.
pub async fn done_chunks(dst: &MariaDb, task: &str) -> BTreeMap<(String, u32), String> {
    let mut c = dst.conn().await;
    let rows: Vec<(String, u32, String)> = c
        .query(format!(
            "SELECT table_name, chunk, CAST(finished_at AS CHAR) FROM dm_meta.{task}_chunk \
             WHERE finished_at IS NOT NULL"
        ))
        .await
        .unwrap_or_default();
    rows.into_iter().map(|(t, n, at)| ((t, n), at)).collect()
}

/// Runs `sql(n)` for n = 0, 1, ... on `src` until stopped; returns how many ran.
pub fn spawn_loop(
    src: &MariaDb,
    stop: Arc<AtomicBool>,
    sql: impl Fn(u64) -> String + Send + 'static,
) -> tokio::task::JoinHandle<u64> {
    let opts = src.opts();
    tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            c.query_drop(sql(n)).await.unwrap();
            n += 1;
        }
        n
    })
}

/// Moves rows across chunk boundaries, deletes, inserts below and above the key range,
/// updates values, until stopped.
pub fn spawn_mover(src: &MariaDb, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    spawn_loop(src, stop, |n| {
        let k = (n * 7919) % 40_000 + 1;
        match n % 5 {
            0 => format!("UPDATE m.t SET id = id + 100000 WHERE id = {k}"),
            1 => format!("DELETE FROM m.t WHERE id = {}", k + 1),
            2 => format!("INSERT INTO m.t VALUES ({}, 0, 'low')", -(n as i64) - 1),
            3 => format!("INSERT INTO m.t VALUES ({}, 0, 'high')", 1_000_000 + n),
            _ => format!("UPDATE m.t SET v = v + 1, s = 'upd' WHERE id = {}", k + 2),
        }
    })
}

/// The `.wasm` of plugin `name` (a crate of examples/plugins or tests/plugins), built once
/// per test process for wasm32-unknown-unknown.
pub fn plugin_wasm(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(|d| PathBuf::from(format!("{d}-plugins")))
            .unwrap_or_else(|_| root.join("target/plugins"));
        for ws in ["examples/plugins", "tests/plugins"] {
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
                .current_dir(root.join(ws))
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "building {ws} failed (scripts/setup.sh adds the wasm32-unknown-unknown target):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        target.join("wasm32-unknown-unknown/release")
    });
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

/// A row as text (NULL, numbers, strings), for comparisons.
pub fn text_row(r: Row) -> Vec<String> {
    r.unwrap()
        .into_iter()
        .map(|v| match v {
            Value::NULL => "NULL".into(),
            Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
            v => v.as_sql(true),
        })
        .collect()
}

/// Runs a future to completion from a synchronous `wait_for` closure.
pub fn futures_now<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// `dm ctl --master-addr <addr> <args>`: (success, stdout + stderr).
pub fn run_ctl(addr: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(dm_bin())
        .arg("ctl")
        .arg("--master-addr")
        .arg(addr)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// dm's API client for the master (or worker) at `addr` on loopback, as `dm ctl` uses it.
pub fn api_client(addr: &str) -> dm_core::api::Client {
    dm_core::api::Client::new(addr, &dm_core::api::Connect::default()).unwrap()
}

/// `/metrics` of the master or worker at `addr`.
pub async fn metrics_of(addr: &str) -> String {
    api_client(addr).metrics().await.unwrap()
}

/// Waits until a subtask of `task` pauses; returns its last error.
pub async fn wait_paused(dm: &Dm, task: &str) -> serde_json::Value {
    let mut err = serde_json::Value::Null;
    wait_for(&format!("{task} to pause"), Duration::from_secs(60), || {
        let (_, text) = dm.ctl(&["--output", "json", "query-status", task]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        match v["subtasks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["stage"] == "paused"))
        {
            Some(s) => {
                err = s["last_error"].clone();
                true
            }
            None => false,
        }
    })
    .await;
    err
}

/// The subtask of `source` in `task`'s status.
pub fn subtask_of(dm: &Dm, task: &str, source: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&dm.ctl_ok(&["-o", "json", "query-status", task])).ok()?;
    v["subtasks"]
        .as_array()?
        .iter()
        .find(|s| s["source_id"] == source)
        .cloned()
}

/// Waits until `source`'s subtask of `task` has applied everything `src` wrote so far.
pub async fn wait_source_caught_up(dm: &Dm, task: &str, source: &str, src: &MariaDb) {
    let at = src.master_pos().await;
    wait_for(
        &format!("{source} at {at}"),
        Duration::from_secs(60),
        || {
            subtask_of(dm, task, source).is_some_and(|s| {
                assert!(
                    s["stage"] != "paused",
                    "{source} paused: {}\nlog:\n{}",
                    s["last_error"],
                    dm.log()
                );
                s["stage"] == "running"
                    && position_reached(s["position"].as_str().unwrap_or(""), &at)
            })
        },
    )
    .await;
}

/// A token from `dm ctl token new`: (token, config entry).
pub fn new_token(name: &str, role: &str) -> (String, String) {
    let (ok, out) = run_ctl(
        "127.0.0.1:1",
        &["-o", "json", "token", "new", "--name", name, "--role", role],
    );
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let e = &v["entry"];
    (
        v["token"].as_str().unwrap().to_string(),
        format!(
            "    - {{name: {}, role: {}, sha256: {}}}\n",
            e["name"].as_str().unwrap(),
            e["role"].as_str().unwrap(),
            e["sha256"].as_str().unwrap()
        ),
    )
}
