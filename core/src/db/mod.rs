//! Talking to MySQL-compatible servers: connection options shared by every connection dm
//! opens (UTC session time zone, utf8mb4, no implicit conversions), identifier quoting, and the
//! `Datum` value model with its exact SQL literal form.

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
    init.extend(
        cfg.session
            .iter()
            .filter(|(k, _)| !is_tidb_variable(k) && !is_dm_controlled(k))
            .filter_map(|(k, v)| session_setting(k, v)),
    );
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

pub use crate::config::{is_dm_controlled, is_tidb_variable, is_variable_name};

/// `SET SESSION name = value`: numbers and words (`ON`, `utf8mb4`, `DEFAULT`) as they are,
/// anything else as a quoted string, so a value is one value; `None` for a bad name (the
/// config check refuses those with the file and line).
fn session_setting(name: &str, value: &str) -> Option<String> {
    if !is_variable_name(name) {
        return None;
    }
    // A value written already quoted (`time_zone: "'+08:00'"`) is the text inside.
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    let word = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let literal = if word || value.parse::<f64>().is_ok() {
        value.to_string()
    } else {
        quote_str(value)
    };
    Some(format!("SET SESSION {name} = {literal}"))
}

/// A connection whose results are raw bytes, whatever a column's character set (copies,
/// dumps, comparisons read values as stored).
pub async fn connect_raw(cfg: &DbConfig, role: DbRole) -> Result<Conn> {
    use mysql_async::prelude::Queryable;
    let mut conn = connect(cfg, role).await?;
    conn.query_drop("SET character_set_results = binary")
        .await
        .map_err(|e| Error::db(role, &cfg.addr(), e))?;
    Ok(conn)
}

/// MySQL 8.0.30+ hides a generated invisible primary key (`my_row_id`,
/// `sql_generate_invisible_primary_key`) from `SHOW CREATE TABLE` and information_schema
/// unless the session asks; its binlog rows carry it. A source session asks, so the tracked
/// table, the target's table and the rows agree. Other servers lack the variable.
const SHOW_GIPK: &str = "SET SESSION show_gipk_in_create_table_and_information_schema = ON";

/// Opens one connection, with a bounded wait so an unreachable server fails fast.
pub async fn connect(cfg: &DbConfig, role: DbRole) -> Result<Conn> {
    let mut conn = open(cfg, role).await?;
    if role == DbRole::Source {
        use mysql_async::prelude::Queryable;
        match conn.query_drop(SHOW_GIPK).await {
            Err(mysql_async::Error::Server(e))
                if e.code == crate::error::errno::UNKNOWN_SYSTEM_VARIABLE => {}
            r => r.map_err(|e| Error::db(role, &cfg.addr(), e))?,
        }
    }
    let tidb: Vec<String> = cfg
        .session
        .iter()
        .filter(|(k, _)| is_tidb_variable(k))
        .filter_map(|(k, v)| session_setting(k, v))
        .collect();
    if !tidb.is_empty() {
        use mysql_async::prelude::Queryable;
        let err = |e| Error::db(role, &cfg.addr(), e);
        let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(err)?;
        if version.is_some_and(|v| v.contains("TiDB")) {
            for set in tidb {
                conn.query_drop(set).await.map_err(err)?;
            }
        }
    }
    Ok(conn)
}

async fn open(cfg: &DbConfig, role: DbRole) -> Result<Conn> {
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

pub use crate::table::quote_ident;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_values_are_one_literal_each() {
        let set = |k: &str, v: &str| session_setting(k, v);
        assert_eq!(set("sql_mode", "").unwrap(), "SET SESSION sql_mode = ''");
        assert_eq!(set("x", "10").unwrap(), "SET SESSION x = 10");
        assert_eq!(set("x", "off").unwrap(), "SET SESSION x = off");
        assert_eq!(
            set("time_zone", "+08:00").unwrap(),
            "SET SESSION time_zone = '+08:00'"
        );
        assert_eq!(
            set("x", "1; DROP DATABASE d").unwrap(),
            "SET SESSION x = '1; DROP DATABASE d'"
        );
        assert_eq!(set("x", "a'b").unwrap(), "SET SESSION x = 'a''b'");
        assert_eq!(
            set("time_zone", "'+08:00'").unwrap(),
            "SET SESSION time_zone = '+08:00'"
        );
        assert!(set("x = 1; DROP DATABASE d; SET y", "1").is_none());
        assert!(is_tidb_variable("tidb_retry_limit") && !is_tidb_variable("tidb"));
    }

    #[test]
    fn foreign_key_checks_and_tidb_variables_stay_out_of_the_session_init() {
        let cfg: DbConfig = serde_yaml::from_str(
            "host: h\nsession:\n  foreign_key_checks: '1'\n  tidb_retry_limit: '10'\n  max_statement_time: '5'\n  time_zone: '+08:00'\n  character_set_client: gbk\n",
        )
        .unwrap();
        let init = opts(&cfg, String::new()).init().to_vec();
        assert!(
            init.contains(&"SET SESSION foreign_key_checks = 0".to_string()),
            "{init:?}"
        );
        assert!(
            init.contains(&"SET SESSION max_statement_time = 5".to_string()),
            "{init:?}"
        );
        assert!(
            init.contains(&"SET time_zone = '+00:00'".to_string()),
            "{init:?}"
        );
        assert!(
            !init.iter().any(|s| s.contains("= 1")
                || s.contains("tidb")
                || s.contains("08:00")
                || s.contains("gbk")),
            "{init:?}"
        );
    }
}
