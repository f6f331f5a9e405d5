//! A dm cluster of real processes: masters that each run their own etcd member (`etcd.embed`,
//! Debian's `etcd` binary), and workers, all on free loopback ports. Secure unless a test asks
//! otherwise: the API over HTTPS with tokens, etcd with client and peer TLS requiring client
//! certificates (workers present theirs).

use super::{dm_bin, find_binary, free_port, wait_for_or_show, MariaDb};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Short leases make failover quick in tests.
pub const WORKER_TTL: u64 = 2;

pub struct Proc {
    pub name: String,
    config: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
    role: &'static str,
    /// Environment of the process (besides the test's).
    env: Vec<(String, String)>,
}

impl Proc {
    /// `status-addr` of a worker's config.
    pub fn status_addr(&self) -> String {
        std::fs::read_to_string(&self.config)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("status-addr: "))
            .expect("workers get a status-addr")
            .to_string()
    }

    fn start(&mut self) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("{}-{}.log", self.name, self.starts)))
                .unwrap();
        let child = Command::new(dm_bin())
            .arg(self.role)
            .arg("-c")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let ok = Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill {sig} {pid}");
        }
    }

    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.dir.join(format!("{}-{i}.log", self.name)))
                    .unwrap_or_default()
            })
            .collect()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process would not die from SIGKILL's point of view until continued.
        self.signal("-CONT");
        self.kill9();
    }
}

pub struct Cluster {
    /// Kept after the test when DM_KEEP_TEST_DIRS is set (logs of every process).
    pub dir: tempfile::TempDir,
    pub masters: Vec<Proc>,
    pub workers: Vec<Proc>,
    pub master_addrs: Vec<String>,
    /// The certificates of a secure cluster: the masters serve HTTPS (and their etcd members
    /// TLS) with `cert`, signed by `ca`; workers present `admin`.
    pub tls: Option<super::TlsFiles>,
    /// The masters serve HTTPS with a certificate signed by this CA.
    pub tls_ca: Option<PathBuf>,
    /// The admin token the masters ask for (a cluster with TLS asks for one).
    pub token: Option<String>,
    /// `keepalive-ttl` of workers added from now on.
    pub worker_ttl: u64,
}

impl Cluster {
    /// `masters` masters (each with its own etcd member) and `workers` workers, started,
    /// secure: the API over HTTPS only, asking for an admin token (which `ctl` and the
    /// workers give); etcd over TLS, open only to certificates signed by the test CA.
    pub fn start(masters: usize, workers: usize) -> Cluster {
        Self::start_with(masters, workers, Some(super::TlsFiles::generate()), None)
    }

    /// A cluster on plain HTTP without tokens, etcd without TLS (loopback only).
    pub fn start_plain(masters: usize, workers: usize) -> Cluster {
        Self::start_with(masters, workers, None, None)
    }

    /// A secure cluster (certificates of `tls`) whose masters use an existing etcd: the
    /// `etcd:` section of their config is what `etcd_section` makes of the deployment's key
    /// file.
    pub fn start_on_etcd(
        masters: usize,
        workers: usize,
        tls: super::TlsFiles,
        etcd_section: &dyn Fn(&std::path::Path) -> String,
    ) -> Cluster {
        Self::start_with(masters, workers, Some(tls), Some(etcd_section))
    }

    fn start_with(
        masters: usize,
        workers: usize,
        tls: Option<super::TlsFiles>,
        external_etcd: Option<&dyn Fn(&std::path::Path) -> String>,
    ) -> Cluster {
        let etcd = find_binary("etcd");
        let mut dir = tempfile::Builder::new()
            .prefix("dm-test-cluster-")
            .tempdir()
            .unwrap();
        if std::env::var_os("DM_KEEP_TEST_DIRS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("cluster files in {}", dir.path().display());
        }
        let ports: Vec<(u16, u16, u16)> = (0..masters)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, _, peer))| format!("m{}={scheme}://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            master_addrs: ports
                .iter()
                .map(|(api, _, _)| format!("127.0.0.1:{api}"))
                .collect(),
            dir,
            masters: vec![],
            workers: vec![],
            tls_ca: tls.as_ref().map(|t| t.ca.clone()),
            tls: None,
            token: None,
            worker_ttl: WORKER_TTL,
        };
        // The deployment's key for stored passwords, shared by every master and worker.
        let key_file = c.dir.path().join("secret.key");
        let mut key = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key)
            .unwrap();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&key_file, hex).unwrap();
        let key_line = format!("secret-key-path: {}\n", key_file.display());
        let tls_lines = tls.as_ref().map_or(String::new(), |t| {
            let (ok, out) = super::run_ctl(
                "127.0.0.1:1",
                &["-o", "json", "token", "new", "--name", "tests"],
            );
            assert!(ok, "{out}");
            let v: Value = serde_json::from_str(&out).unwrap();
            c.token = v["token"].as_str().map(str::to_string);
            format!(
                "tls:\n  cert: {}\n  key: {}\n  ca: {}\nauth:\n  tokens:\n    - {{name: tests, role: admin, sha256: {}}}\n",
                t.cert.display(),
                t.key.display(),
                t.ca.display(),
                v["entry"]["sha256"].as_str().unwrap()
            )
        });
        for (i, (api, client, peer)) in ports.iter().enumerate() {
            let name = format!("m{}", i + 1);
            let config = c.dir.path().join(format!("{name}.yaml"));
            let etcd_section = match external_etcd {
                Some(section) => section(&key_file),
                None => format!(
                    "etcd:\n  embed:\n    data-dir: {}\n    client-url: {scheme}://127.0.0.1:{client}\n    \
                     peer-url: {scheme}://127.0.0.1:{peer}\n    initial-cluster: {initial}\n    bin: {}\n",
                    c.dir.path().join(format!("etcd-{name}")).display(),
                    etcd.display()
                ),
            };
            std::fs::write(
                &config,
                format!(
                    "name: {name}\nmaster-addr: 127.0.0.1:{api}\nelection-ttl: 2\n{etcd_section}{tls_lines}{key_line}"
                ),
            )
            .unwrap();
            let mut p = Proc {
                name,
                config,
                dir: c.dir.path().to_path_buf(),
                child: None,
                starts: 0,
                role: "master",
                env: vec![],
            };
            p.start();
            c.masters.push(p);
        }
        c.tls = tls;
        for i in 0..workers {
            c.add_worker(&format!("w{}", i + 1));
        }
        c
    }

    pub fn add_worker(&mut self, name: &str) {
        self.add_worker_with(name, &[]);
    }

    /// A worker with `env` set (e.g. `DM_FAILPOINTS`).
    pub fn add_worker_with(&mut self, name: &str, env: &[(&str, &str)]) {
        let config = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "name: {name}\nkeepalive-ttl: {}\nmaster-addrs: [{}]\n\
                 data-dir: {}\nstatus-addr: 127.0.0.1:{}\nsecret-key-path: {}\n",
                self.worker_ttl,
                self.master_addrs.join(", "),
                self.dir.path().join(format!("{name}-data")).display(),
                super::free_port(),
                self.dir.path().join("secret.key").display()
            ) + &self.tls_ca.as_ref().map_or(String::new(), |ca| {
                format!("master-tls-ca: {}\n", ca.display())
            }) + &self.tls.as_ref().map_or(String::new(), |t| {
                format!(
                    "master-tls-cert: {}\nmaster-tls-key: {}\n",
                    t.admin.0.display(),
                    t.admin.1.display()
                )
            }) + &self.token.as_ref().map_or(String::new(), |t| {
                let file = self.dir.path().join(format!("{name}.token"));
                std::fs::write(&file, t).unwrap();
                format!("token-file: {}\n", file.display())
            }),
        )
        .unwrap();
        let mut p = Proc {
            name: name.to_string(),
            config,
            dir: self.dir.path().to_path_buf(),
            child: None,
            starts: 0,
            role: "worker",
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        p.start();
        self.workers.push(p);
    }

    pub fn master(&mut self, name: &str) -> &mut Proc {
        self.masters.iter_mut().find(|p| p.name == name).unwrap()
    }

    pub fn worker(&mut self, name: &str) -> &mut Proc {
        self.workers.iter_mut().find(|p| p.name == name).unwrap()
    }

    pub fn restart(p: &mut Proc) {
        p.kill9();
        p.start();
    }

    /// `dm ctl` against every master (the first that answers is used).
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        self.ctl_at(&self.master_addrs.join(","), args)
    }

    /// `dm ctl` against the masters at `addrs` only.
    pub fn ctl_at(&self, addrs: &str, args: &[&str]) -> (bool, String) {
        let ca = self.tls_ca.as_ref().map(|p| p.display().to_string());
        let mut all: Vec<&str> = ca.iter().flat_map(|c| ["--tls-ca", c.as_str()]).collect();
        all.extend(self.token.iter().flat_map(|t| ["--token", t.as_str()]));
        all.extend_from_slice(args);
        super::run_ctl(addrs, &all)
    }

    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.ctl(args);
        assert!(ok, "dm ctl {args:?} failed:\n{text}\n{}", self.logs());
        text
    }

    pub fn json(&self, args: &[&str]) -> Option<Value> {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        let (ok, text) = self.ctl(&a);
        if !ok {
            return None;
        }
        serde_json::from_str(&text).ok()
    }

    pub fn leader(&self) -> Option<String> {
        self.json(&["list-member", "--leader"])?["leader"]
            .as_str()
            .map(str::to_string)
    }

    /// The worker bound to `source`, from list-member.
    pub fn bound_worker(&self, source: &str) -> Option<String> {
        let v = self.json(&["list-member", "--worker"])?;
        v["workers"]
            .as_array()?
            .iter()
            .find(|w| {
                w["sources"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s == source))
            })
            .and_then(|w| w["name"].as_str().map(str::to_string))
    }

    /// The subtask of `task` on `source` from query-status.
    pub fn subtask(&self, task: &str, source: &str) -> Option<Value> {
        let v = self.json(&["query-status", task])?;
        v["subtasks"]
            .as_array()?
            .iter()
            .find(|s| s["source_id"] == source)
            .cloned()
    }

    pub fn create_source(&self, id: &str, db: &MariaDb) {
        let f = self.dir.path().join(format!("source-{id}.yaml"));
        std::fs::write(&f, super::source_yaml(id, db)).unwrap();
        self.ctl_ok(&["operate-source", "create", f.to_str().unwrap()]);
    }

    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Waits until a master leads and answers.
    pub async fn wait_leader(&self) -> String {
        let mut leader = None;
        let found = || {
            leader = self.leader();
            leader.is_some()
        };
        wait_for_or_show("a leader", Duration::from_secs(60), found, || self.logs()).await;
        leader.unwrap()
    }

    /// Waits until `task` on `source` has applied the source's current position.
    pub async fn wait_caught_up(&self, task: &str, source: &str, src: &MariaDb) {
        let target = src.master_pos().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(st) = self.subtask(task, source) {
                assert_ne!(st["stage"], "paused", "{st}\n{}", self.logs());
                let pos = st["position"].as_str().unwrap_or("");
                if pos.split(' ').next() == Some(target.as_str()) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "{source} not caught up with {target}: {st}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of every process's log and of every embedded etcd member's.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for p in self.masters.iter().chain(&self.workers) {
            push_tail(&mut s, &p.name, &p.log());
        }
        for m in &self.masters {
            let path = self.dir.path().join(format!("etcd-{}.log", m.name));
            if let Ok(log) = std::fs::read_to_string(path) {
                push_tail(&mut s, &format!("etcd member of {}", m.name), &log);
            }
        }
        s
    }
}

/// Appends the last 40 lines of `log` under a `--- <title>` line.
fn push_tail(s: &mut String, title: &str, log: &str) {
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    *s += &format!("--- {title} (last lines)\n");
    for l in tail.into_iter().rev() {
        *s += l;
        s.push('\n');
    }
}

/// `etcdctl` against the members of `c` (with the test CA and, when `cert`, the admin
/// certificate): success and what it printed.
pub fn etcdctl(c: &Cluster, endpoints: &str, cert: bool, args: &[&str]) -> (bool, String) {
    let mut all: Vec<String> = vec![];
    if let Some(t) = &c.tls {
        all.push(format!("--cacert={}", t.ca.display()));
        if cert {
            all.push(format!("--cert={}", t.admin.0.display()));
            all.push(format!("--key={}", t.admin.1.display()));
        }
    }
    all.extend(args.iter().map(|a| a.to_string()));
    etcdctl_at(endpoints, &all)
}

/// `etcdctl --endpoints <endpoints> <args>`: success and what it printed.
pub fn etcdctl_at(endpoints: &str, args: &[String]) -> (bool, String) {
    let mut cmd = Command::new(find_binary("etcdctl"));
    cmd.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoints)
        .arg("--dial-timeout=2s")
        .arg("--command-timeout=3s");
    let out = cmd.args(args).output().expect("etcdctl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
