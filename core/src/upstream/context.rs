//! The session a source statement ran in, read from its QUERY event's status variables.
//! What dm runs on the target for a source statement (its DDL) must run in the same session
//! context, or the target computes other values: a `DEFAULT CURRENT_TIMESTAMP` column filled
//! at another time in another zone, a string literal read under other escaping rules
//! (`NO_BACKSLASH_ESCAPES`: one harmless statement on the source could become two on the
//! target), identifiers under other quoting rules (`ANSI_QUOTES`).

use crate::config::Flavor;
use crate::db::quote_str;
use mysql_async::binlog::events::{QueryEvent, StatusVarVal};
use mysql_async::binlog::StatusVarKey;
use std::collections::BTreeSet;

/// The parts of a statement's session that change what a DDL does; `None` where the event
/// does not say (the statement did not depend on it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatementContext {
    /// `sql_mode` names, as `SET sql_mode` takes them.
    pub sql_mode: Option<String>,
    pub time_zone: Option<String>,
    /// collation_connection and collation_server (ids). The statement's text reaches dm as
    /// UTF-8, so the target reads it with `character_set_client = utf8mb4`.
    pub collations: Option<(u16, u16)>,
    /// The statement's start: seconds since the epoch (`CURRENT_TIMESTAMP`, `NOW()`).
    pub timestamp: u32,
    pub foreign_key_checks: Option<bool>,
    pub unique_checks: Option<bool>,
    /// auto_increment_increment, auto_increment_offset.
    pub auto_increment: Option<(u16, u16)>,
    /// character_set_client (a collation id of it): how the source read the statement's bytes.
    #[serde(default)]
    pub client_charset: Option<u16>,
}

/// `sql_mode` bits and their names, the same positions in MySQL and MariaDB up to bit 31.
/// `NO_AUTO_CREATE_USER` (bit 28) is left out: it concerns GRANT only and MySQL 8 refuses it.
const SQL_MODES: &[&str] = &[
    "REAL_AS_FLOAT",
    "PIPES_AS_CONCAT",
    "ANSI_QUOTES",
    "IGNORE_SPACE",
    "",
    "ONLY_FULL_GROUP_BY",
    "NO_UNSIGNED_SUBTRACTION",
    "NO_DIR_IN_CREATE",
    "POSTGRESQL",
    "ORACLE",
    "MSSQL",
    "DB2",
    "MAXDB",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "NO_FIELD_OPTIONS",
    "MYSQL323",
    "MYSQL40",
    "ANSI",
    "NO_AUTO_VALUE_ON_ZERO",
    "NO_BACKSLASH_ESCAPES",
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE",
    "INVALID_DATES",
    "ERROR_FOR_DIVISION_BY_ZERO",
    "TRADITIONAL",
    "",
    "HIGH_NOT_PRECEDENCE",
    "NO_ENGINE_SUBSTITUTION",
    "PAD_CHAR_TO_FULL_LENGTH",
];

/// Bits above 31, which differ between the flavors.
fn high_sql_mode(flavor: Flavor, bit: u32) -> Option<&'static str> {
    match (flavor, bit) {
        (Flavor::Mariadb, 4) => Some("IGNORE_BAD_TABLE_OPTIONS"),
        (Flavor::Mariadb, 32) => Some("EMPTY_STRING_IS_NULL"),
        (Flavor::Mariadb, 33) => Some("SIMULTANEOUS_ASSIGNMENT"),
        (Flavor::Mariadb, 34) => Some("TIME_ROUND_FRACTIONAL"),
        (Flavor::Mysql, 32) => Some("TIME_TRUNCATE_FRACTIONAL"),
        _ => None,
    }
}

/// The names of the `sql_mode` bits of a `flavor` source.
pub fn sql_mode_names(flavor: Flavor, bits: u64) -> String {
    (0..64u32)
        .filter(|b| bits & (1 << b) != 0)
        .filter_map(|b| {
            high_sql_mode(flavor, b)
                .or_else(|| SQL_MODES.get(b as usize).copied())
                .filter(|n| !n.is_empty())
        })
        .collect::<Vec<_>>()
        .join(",")
}

const OPTION_NO_FOREIGN_KEY_CHECKS: u32 = 0x0400_0000;
const OPTION_RELAXED_UNIQUE_CHECKS: u32 = 0x0800_0000;

impl StatementContext {
    /// The context of `q`, an event whose header says it started at `timestamp`.
    pub fn of(q: &QueryEvent<'_>, timestamp: u32, flavor: Flavor) -> Self {
        let mut ctx = StatementContext {
            timestamp,
            ..Default::default()
        };
        let vars = q.status_vars();
        let value = |k: StatusVarKey| {
            vars.get_status_var(k)
                .and_then(|v| v.get_value().ok().map(owned))
        };
        if let Some(Owned::SqlMode(bits)) = value(StatusVarKey::SqlMode) {
            ctx.sql_mode = Some(sql_mode_names(flavor, bits));
        }
        if let Some(Owned::Flags2(f)) = value(StatusVarKey::Flags2) {
            ctx.foreign_key_checks = Some(f & OPTION_NO_FOREIGN_KEY_CHECKS == 0);
            ctx.unique_checks = Some(f & OPTION_RELAXED_UNIQUE_CHECKS == 0);
        }
        if let Some(Owned::TimeZone(tz)) = value(StatusVarKey::TimeZone) {
            ctx.time_zone = (!tz.is_empty()).then_some(tz);
        }
        if let Some(Owned::Charset((client, c))) = value(StatusVarKey::Charset) {
            ctx.collations = Some(c);
            ctx.client_charset = Some(client);
        }
        if let Some(Owned::AutoIncrement(a)) = value(StatusVarKey::AutoIncrement) {
            ctx.auto_increment = Some(a);
        }
        ctx
    }

    /// The `SET SESSION` statement that puts a session into this context; what the event
    /// does not carry takes the value of `baseline` (the session as dm opened it).
    pub fn set_statement(&self, baseline: &Baseline) -> String {
        let flag = |v: Option<bool>, base: &str| match v {
            Some(true) => "1".to_string(),
            Some(false) => "0".to_string(),
            None => base.to_string(),
        };
        let (collation_connection, collation_server) = match self.collations {
            Some((conn, server)) => (
                baseline.collation_for_target(conn).to_string(),
                baseline.collation_for_target(server).to_string(),
            ),
            None => (
                quote_str(&baseline.collation_connection),
                quote_str(&baseline.collation_server),
            ),
        };
        let (increment, offset) = match self.auto_increment {
            Some((i, o)) => (i.to_string(), o.to_string()),
            None => (
                baseline.auto_increment_increment.clone(),
                baseline.auto_increment_offset.clone(),
            ),
        };
        format!(
            "SET SESSION sql_mode = {}, time_zone = {}, character_set_client = 'utf8mb4', \
             collation_connection = {collation_connection}, collation_server = {collation_server}, \
             foreign_key_checks = {}, unique_checks = {}, auto_increment_increment = {increment}, \
             auto_increment_offset = {offset}, timestamp = {}",
            quote_str(self.sql_mode.as_deref().unwrap_or(&baseline.sql_mode)),
            quote_str(self.time_zone.as_deref().unwrap_or(&baseline.time_zone)),
            flag(self.foreign_key_checks, &baseline.foreign_key_checks),
            flag(self.unique_checks, &baseline.unique_checks),
            if self.timestamp == 0 {
                "DEFAULT".to_string()
            } else {
                self.timestamp.to_string()
            },
        )
    }
}

/// A row of `Baseline::QUERY`.
pub type BaselineRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

/// The session variables of a target session as dm opened it (`Baseline::QUERY`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    pub sql_mode: String,
    pub time_zone: String,
    pub collation_connection: String,
    pub collation_server: String,
    pub foreign_key_checks: String,
    pub unique_checks: String,
    pub auto_increment_increment: String,
    pub auto_increment_offset: String,
    /// The collation ids the target knows and its default utf8mb4 collation (see
    /// `collation_for_target`); `None`: not read, ids are set as the source logged them.
    pub target_collations: Option<(BTreeSet<u16>, u16)>,
}

/// MySQL 8's utf8mb4 collations (`utf8mb4_0900_ai_ci`, MySQL 8's default, and the other
/// `_0900_` ones).
const MYSQL8_UTF8MB4_COLLATIONS: std::ops::RangeInclusive<u16> = 255..=323;

impl Baseline {
    /// A target session's baseline, with the collations the target knows.
    pub async fn read(conn: &mut mysql_async::Conn) -> Result<Self, mysql_async::Error> {
        use mysql_async::prelude::Queryable;
        let row: Option<BaselineRow> = conn.query_first(Self::QUERY).await?;
        let mut base = Self::from_row(row.unwrap_or_default());
        let ids: Vec<(u16, String)> = conn
            .query(
                "SELECT ID, CONCAT(CHARACTER_SET_NAME, IS_DEFAULT) FROM information_schema.COLLATIONS \
                 WHERE ID IS NOT NULL",
            )
            .await?;
        let default = ids
            .iter()
            .find(|(_, d)| d == "utf8mb4Yes")
            .map_or(45, |(id, _)| *id);
        base.target_collations = Some((ids.into_iter().map(|(id, _)| id).collect(), default));
        Ok(base)
    }

    /// The collation the target session takes for the source's collation `id`: the same one,
    /// or for a MySQL 8 utf8mb4 collation the target lacks (a MariaDB target), the target's
    /// default utf8mb4 collation (TiDB DM's `collation_compatible: loose`). Other unknown ids
    /// stay: the target refuses them and the task pauses naming the statement.
    pub fn collation_for_target(&self, id: u16) -> u16 {
        match &self.target_collations {
            Some((known, utf8mb4))
                if !known.contains(&id) && MYSQL8_UTF8MB4_COLLATIONS.contains(&id) =>
            {
                *utf8mb4
            }
            _ => id,
        }
    }
    pub const QUERY: &'static str = "SELECT @@session.sql_mode, @@session.time_zone, \
        @@session.collation_connection, @@session.collation_server, \
        CAST(@@session.foreign_key_checks AS CHAR), CAST(@@session.unique_checks AS CHAR), \
        CAST(@@session.auto_increment_increment AS CHAR), CAST(@@session.auto_increment_offset AS CHAR)";

    pub fn from_row(r: BaselineRow) -> Self {
        let (
            sql_mode,
            time_zone,
            collation_connection,
            collation_server,
            foreign_key_checks,
            unique_checks,
            auto_increment_increment,
            auto_increment_offset,
        ) = r;
        Baseline {
            sql_mode,
            time_zone,
            collation_connection,
            collation_server,
            foreign_key_checks,
            unique_checks,
            auto_increment_increment,
            auto_increment_offset,
            target_collations: None,
        }
    }
}

/// Status values without the event's lifetime.
enum Owned {
    SqlMode(u64),
    Flags2(u32),
    TimeZone(String),
    Charset((u16, (u16, u16))),
    AutoIncrement((u16, u16)),
    Other,
}

fn owned(v: StatusVarVal<'_>) -> Owned {
    match v {
        StatusVarVal::SqlMode(m) => Owned::SqlMode(m.0),
        StatusVarVal::Flags2(f) => Owned::Flags2(f.0),
        StatusVarVal::TimeZone(tz) => Owned::TimeZone(tz.as_str().into_owned()),
        StatusVarVal::Charset {
            charset_client,
            collation_connection,
            collation_server,
        } => Owned::Charset((charset_client, (collation_connection, collation_server))),
        StatusVarVal::AutoIncrement { increment, offset } => {
            Owned::AutoIncrement((increment, offset))
        }
        _ => Owned::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_mode_bits_become_names_of_the_flavor() {
        let bits = (1 << 2) | (1 << 20) | (1 << 21) | (1 << 28) | (1 << 32);
        assert_eq!(
            sql_mode_names(Flavor::Mariadb, bits),
            "ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES,EMPTY_STRING_IS_NULL"
        );
        assert_eq!(
            sql_mode_names(Flavor::Mysql, bits),
            "ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES,TIME_TRUNCATE_FRACTIONAL"
        );
    }

    #[test]
    fn what_the_event_lacks_comes_from_the_baseline() {
        let base = Baseline {
            sql_mode: "STRICT_TRANS_TABLES".into(),
            time_zone: "SYSTEM".into(),
            collation_connection: "utf8mb4_general_ci".into(),
            collation_server: "latin1_swedish_ci".into(),
            foreign_key_checks: "1".into(),
            unique_checks: "1".into(),
            auto_increment_increment: "1".into(),
            auto_increment_offset: "1".into(),
            target_collations: None,
        };
        let ctx = StatementContext {
            sql_mode: Some("NO_BACKSLASH_ESCAPES".into()),
            time_zone: Some("+02:00".into()),
            collations: Some((45, 8)),
            timestamp: 1_700_000_000,
            foreign_key_checks: Some(false),
            unique_checks: None,
            auto_increment: None,
            client_charset: Some(28),
        };
        assert_eq!(
            ctx.set_statement(&base),
            "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES', time_zone = '+02:00', \
             character_set_client = 'utf8mb4', collation_connection = 45, collation_server = 8, \
             foreign_key_checks = 0, unique_checks = 1, auto_increment_increment = 1, \
             auto_increment_offset = 1, timestamp = 1700000000"
        );
        let plain = StatementContext::default().set_statement(&base);
        assert!(
            plain.contains("sql_mode = 'STRICT_TRANS_TABLES'")
                && plain.ends_with("timestamp = DEFAULT")
        );
    }
}
