//! Configuration files: `source.yaml`, `task.yaml` and the standalone `dm.yaml`.
//!
//! Field names follow TiDB DM so that a DM user's files work with few edits. Unknown fields and
//! wrong types are errors that name the file, the line and the field; defaults live in one place
//! per struct (its `Default` impl or a `default_*` function next to it) and are documented in
//! `docs/config.md`.

mod api;
mod checking_items;
mod cluster;
mod compat;
mod db;
mod dump_args;
pub mod online_ddl;
mod pattern;
mod plugin;
mod session;
mod source;
mod standalone;
mod task;

pub use api::{ApiAuth, ApiTls, ApiToken, Role};
pub use checking_items::{checking_items, CHECKING_ITEMS};
pub use cluster::{api_ca, EmbedEtcd, EtcdConfig, MasterConfig, WorkerConfig};
pub use db::{DbConfig, Security};
pub use pattern::Pattern;
pub use plugin::PluginSpec;
pub use session::{is_dm_controlled, is_tidb_variable, is_variable_name};
pub use source::{Flavor, PurgeConfig, SourceConfig};
pub use standalone::StandaloneConfig;
pub use task::{
    BinlogMeta, BlockAllowList, Consistency, DumperConfig, ExpressionFilter, Extract, FilterAction,
    FilterRule, MysqlInstance, RouteRule, ShardMode, SyncerConfig, TableRule, TaskConfig, TaskMode,
    FILTER_EVENTS,
};

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// A whole number from `.0` to `.1` (`.2` says so in the error) for `deserialize_with`: refused
/// in the visitor, so that the error has the value's line.
pub(crate) struct Bounded(pub u64, pub u64, pub &'static str);

impl serde::de::Visitor<'_> for Bounded {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.2)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        if (self.0..=self.1).contains(&v) {
            Ok(v)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
        }
    }
}

/// Reads and parses a YAML file; errors name the file, line, column and field.
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
        hint: "check the path given with -c/--config".into(),
    })?;
    parse_yaml(&path.display().to_string(), &text)
}

/// Parses YAML text that came from `file` (a path or a name used in messages).
pub fn parse_yaml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T> {
    serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let message = e.to_string();
        // serde_yaml appends " at line L column C"; we print the position in front instead.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        let hint = if let Some(close) = closest_field(&message) {
            format!("did you mean `{close}`? (the accepted fields are listed in docs/config.md)")
        } else if message.contains("unknown field") {
            "remove the field or fix its spelling; the accepted fields are listed in docs/config.md"
                .into()
        } else if message.contains("invalid type") || message.contains("invalid value") {
            "give the field a value of the type docs/config.md names".into()
        } else if message.contains("missing field") {
            "add the field; docs/config.md lists the required ones".into()
        } else {
            "fix the YAML syntax at that position".into()
        };
        Error::Config {
            file: file.to_string(),
            line,
            column,
            message,
            hint,
        }
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the accepted field closest to
/// `x` when it is a likely misspelling (at most a third of its letters differ).
fn closest_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (given, rest) = rest.split_once('`')?;
    let accepted: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    accepted
        .into_iter()
        .map(|a| (edit_distance(given, a), a))
        .filter(|(d, a)| *d > 0 && *d * 3 <= a.len().max(given.len()))
        .min()
        .map(|(_, a)| a.to_string())
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A semantic error found after parsing: locates `key` in the text to give a line.
pub(crate) fn semantic_error(
    file: &str,
    text: &str,
    key: &str,
    message: String,
    hint: &str,
) -> Error {
    let line = text
        .lines()
        .position(|l| l.trim_start().trim_start_matches("- ").starts_with(key))
        .map(|i| i + 1)
        .unwrap_or(0);
    Error::Config {
        file: file.to_string(),
        line,
        column: 1,
        message,
        hint: hint.into(),
    }
}

/// The connection settings of `at`: its session variables' names and its TLS files.
pub(crate) fn check_connection(file: &str, text: &str, at: &str, db: &DbConfig) -> Result<()> {
    if let Some(name) = db.session.keys().find(|k| !is_variable_name(k)) {
        return Err(semantic_error(
            file,
            text,
            name,
            format!("{at}.session: `{name}` is not a session variable name"),
            "name a variable as SHOW VARIABLES does: letters, digits and _",
        ));
    }
    check_security(file, text, at, db)
}

/// The TLS files of a connection exist, and a client certificate comes with its key.
fn check_security(file: &str, text: &str, at: &str, db: &DbConfig) -> Result<()> {
    let Some(s) = &db.security else {
        return Ok(());
    };
    if s.ssl_cert.is_some() != s.ssl_key.is_some() {
        let field = if s.ssl_cert.is_some() {
            "ssl-cert"
        } else {
            "ssl-key"
        };
        return Err(semantic_error(
            file,
            text,
            field,
            format!("{at}.security: ssl-cert and ssl-key go together"),
            "give both the client certificate and its key, or neither",
        ));
    }
    for (field, path) in [
        ("ssl-ca", &s.ssl_ca),
        ("ssl-cert", &s.ssl_cert),
        ("ssl-key", &s.ssl_key),
    ] {
        if let Some(p) = path.as_ref().filter(|p| !p.is_file()) {
            return Err(semantic_error(
                file,
                text,
                field,
                format!(
                    "{at}.security.{field}: {} is not a readable file",
                    p.display()
                ),
                "give the path of a PEM file on the machine that runs dm",
            ));
        }
    }
    Ok(())
}

/// A name that becomes part of paths and metadata keys: letters, digits, `_`, `-`, `.`; not
/// starting with a dot; at most 64 characters.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A password field holds clear text or an `enc:` value this deployment's key opens.
pub(crate) fn check_password(file: &str, text: &str, field: &str, value: &str) -> Result<()> {
    crate::secret::reveal(value).map(|_| ()).map_err(|e| {
        semantic_error(
            file,
            text,
            "password",
            format!("{field}: {e}"),
            "encrypt it with `dm ctl encrypt '<password>'` under the same DM_SECRET_KEY, or write it in clear",
        )
    })
}
