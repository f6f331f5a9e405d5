//! Talking to MySQL-compatible servers: connection options shared by every connection dm
//! opens (UTC session time zone, utf8mb4, no implicit conversions), identifier quoting, and the
//! `Datum` value model with its exact SQL literal form.

mod datum;

pub(crate) use datum::timestamp_text;
pub use datum::Datum;

use crate::config::DbConfig;
use crate::error::{DbRole, Error, Result};
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};
use std::time::Duration;

/// Session settings every connection gets. UTC makes TIMESTAMP values travel unchanged. The
/// sql_mode is strict, so that a value the target would alter is an error rather than a silent
/// change, keeps 0 in AUTO_INCREMENT columns and accepts the dates the source accepted.
const SESSION_INIT: &[&str] = &[
    "SET time_zone = '+00:00'",
    "SET NAMES utf8mb4",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ALLOW_INVALID_DATES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
    // Tables load in parallel and rows arrive in source commit order: referential checks
    // on the target would only refuse valid states.
    "SET SESSION foreign_key_checks = 0",
];

/// Connection options of `cfg`, with its password as the server wants it (`password`).
fn opts(cfg: &DbConfig, password: String) -> Opts {
    let mut init: Vec<String> = SESSION_INIT.iter().map(|s| s.to_string()).collect();
    for (k, v) in &cfg.session {
        init.push(format!(
            "SET SESSION {} = {}",
            quote_ident(k).trim_matches('`'),
            v
        ));
    }
    let ssl = cfg.security.as_ref().map(|s| {
        let mut o = SslOpts::default()
            .with_danger_skip_domain_validation(!s.verify_hostname)
            .with_client_identity(match (&s.ssl_cert, &s.ssl_key) {
                (Some(cert), Some(key)) => {
                    Some(ClientIdentity::new(cert.clone().into(), key.clone().into()))
                }
                _ => None,
            });
        if let Some(ca) = &s.ssl_ca {
            o = o
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true);
        }
        o
    });
    OptsBuilder::default()
        .ssl_opts(ssl)
        .ip_or_hostname(cfg.host.clone())
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(Some(password))
        .prefer_socket(false)
        .init(init)
        .conn_ttl(Some(Duration::from_secs(300)))
        .wait_timeout(Some(28_800))
        .tcp_keepalive(Some(Duration::from_secs(10)))
        .into()
}

/// Opens one connection, with a bounded wait so an unreachable server fails fast.
pub async fn connect(cfg: &DbConfig, role: DbRole) -> Result<Conn> {
    if cfg.host.trim().is_empty() {
        return Err(Error::Invalid(format!(
            "the {role} has no server address (a source of binlog files has no server to connect to)"
        )));
    }
    let password = crate::secret::reveal(&cfg.password)
        .map_err(|e| Error::Invalid(format!("{role} {}: its stored password: {e}", cfg.addr())))?;
    let fut = Conn::new(opts(cfg, password));
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(r) => r.map_err(|e| Error::db(role, &cfg.addr(), e)),
        Err(_) => Err(Error::Db {
            role,
            addr: cfg.addr(),
            message: "connection timed out after 10 s".into(),
            errno: None,
            retryable: true,
            position: None,
        }),
    }
}

/// `` `name` `` with backticks doubled.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `'text'` with quotes and backslashes escaped (for identifiers used as values).
pub fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
