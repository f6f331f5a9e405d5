//! The etcd member a master runs itself (`etcd.embed`), as TiDB DM embeds etcd: dm starts the
//! `etcd` binary with the member's URLs and restarts it when it exits. The member dies with the
//! master (parent-death signal), so a killed master takes its member along, like an embedded
//! one would.

use super::etcd_access::MemberTls;
use crate::config::EmbedEtcd;
use crate::error::{Error, Result};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// Starts the member and keeps it running; returns once it was started the first time.
pub async fn start(cfg: EmbedEtcd, default_name: String, tls: Option<MemberTls>) -> Result<()> {
    let bin = cfg.bin.clone().unwrap_or_else(|| PathBuf::from("etcd"));
    let mut child = spawn(&cfg, &bin, &default_name, tls.as_ref())?;
    tokio::spawn(async move {
        loop {
            let status = child.wait().await;
            tracing::warn!(
                ?status,
                "the embedded etcd member exited; starting it again"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            match spawn(&cfg, &bin, &default_name, tls.as_ref()) {
                Ok(c) => child = c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the embedded etcd member");
                    return;
                }
            }
        }
    });
    Ok(())
}

fn spawn(
    cfg: &EmbedEtcd,
    bin: &PathBuf,
    default_name: &str,
    tls: Option<&MemberTls>,
) -> Result<tokio::process::Child> {
    let name = cfg.name.as_deref().unwrap_or(default_name);
    std::fs::create_dir_all(&cfg.data_dir)?;
    let log_path = cfg.data_dir.with_extension("log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut cmd = tokio::process::Command::new(bin);
    // etcd has no use for dm's key to the secrets at rest.
    cmd.env_remove("DM_SECRET_KEY");
    cmd.arg("--name")
        .arg(name)
        .arg("--data-dir")
        .arg(&cfg.data_dir)
        .arg("--listen-client-urls")
        .arg(&cfg.client_url)
        .arg("--advertise-client-urls")
        .arg(&cfg.client_url)
        .arg("--listen-peer-urls")
        .arg(&cfg.peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&cfg.peer_url)
        .arg("--initial-cluster")
        .arg(&cfg.initial_cluster)
        .arg("--initial-cluster-state")
        .arg("new")
        // Workers rewrite their status every second: without compaction etcd keeps every
        // revision until it reaches its quota and refuses all writes. Watches start from
        // "now" when reopened, so a compaction never leaves one behind.
        // Faster elections than etcd's defaults (100/1000 ms): etcd has no leader from a
        // member's death until the election ends (two rounds when the votes split), and a
        // worker's lease can only be renewed with a leader. With these a leaderless period
        // stays under ~2 s, inside the default 3 s worker lease.
        .arg("--heartbeat-interval")
        .arg("100")
        .arg("--election-timeout")
        .arg("500")
        .arg("--auto-compaction-mode")
        .arg("periodic")
        .arg("--auto-compaction-retention")
        .arg("10m")
        .args(tls.map(tls_args).unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to signal the child when
    // this process dies.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        Error::Invalid(format!(
            "cannot start etcd (`{}`): {e}; install etcd-server or set etcd.embed.bin in the master config",
            bin.display()
        ))
    })?;
    tracing::info!(member = name, client_url = %cfg.client_url, log = %log_path.display(), "embedded etcd member started");
    Ok(child)
}

/// Client and peer TLS with the master's certificate; clients and peers must present a
/// certificate signed by the deployment's CA. etcd's own authentication stays off: the CA is
/// the gate, as for the API's mutual TLS.
fn tls_args(tls: &MemberTls) -> Vec<std::ffi::OsString> {
    let mut out = vec![];
    for (flag, path) in [
        ("--cert-file", &tls.cert),
        ("--key-file", &tls.key),
        ("--trusted-ca-file", &tls.ca),
        ("--peer-cert-file", &tls.cert),
        ("--peer-key-file", &tls.key),
        ("--peer-trusted-ca-file", &tls.ca),
    ] {
        out.push(flag.into());
        out.push(path.into());
    }
    // etcd 3.4 already requires client certificates once it has a trusted CA; the flag says
    // so explicitly (and keeps it so should a version stop implying it).
    out.push("--client-cert-auth".into());
    out.push("--peer-client-cert-auth".into());
    out
}
