//! Errors users can see. Every variant has a stable code and a hint for the fix, in the manner
//! of TiKV's `error_code`: the message names the object (file, source, task, table, position),
//! the hint says what to do. Whether an error is worth retrying is a property of the error.

pub mod codes;
mod plugin;

pub use plugin::PluginError;

use serde::{Deserialize, Serialize};

/// Result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration file is malformed or inconsistent.
    #[error("{file}:{line}:{column}: {message}")]
    Config {
        file: String,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Meta(String),
    /// The metadata store (etcd) does not answer: too few of its members are up.
    #[error("metadata store unavailable: {0}")]
    MetaUnavailable(String),
    /// This worker's lease ran out: another worker may run its sources now, so it must not
    /// write for them any more.
    #[error("worker lease lost: {0}")]
    LeaseLost(String),
    /// A database (source or target) refused or failed a request.
    #[error("{role} {addr}: {message}")]
    Db {
        role: DbRole,
        addr: String,
        message: String,
        /// MySQL error number when the server sent one.
        errno: Option<u16>,
        retryable: bool,
        /// End of the source transaction being applied, when the failure is about one.
        position: Option<String>,
    },
    /// The binlog stream failed or sent something dm cannot use.
    #[error("binlog of source `{source_id}` at {position}: {message}")]
    Binlog {
        source_id: String,
        position: String,
        message: String,
        retryable: bool,
    },
    /// The relay log of a source cannot be written or read.
    #[error("relay log of source `{source_id}`: {message}")]
    Relay {
        source_id: String,
        message: String,
        retryable: bool,
    },
    /// A DDL statement that dm cannot track or apply.
    #[error("unsupported DDL at {position}: {message}: `{statement}`")]
    UnsupportedDdl {
        position: String,
        statement: String,
        message: String,
    },
    /// An online schema change (gh-ost, pt-osc) dm cannot follow: a swap whose shadow table's
    /// statements it did not see, or a RENAME no such tool makes.
    #[error("online schema change of {table} at {position}: {message}: `{statement}`")]
    OnlineDdl {
        table: String,
        position: String,
        statement: String,
        message: String,
    },
    /// A row whose statement is larger than the target takes in one packet.
    #[error("table {table} at {position}: the row {key} needs a statement of {bytes} bytes; the target's max_allowed_packet is {packet}")]
    RowTooBig {
        table: String,
        key: String,
        position: String,
        bytes: usize,
        packet: usize,
    },
    /// A row or schema does not match what dm tracked for the table.
    #[error("table {table} at {position}: {message}")]
    Schema {
        table: String,
        position: String,
        message: String,
    },
    /// A filter rule with `action: Error` refused an event, or an expression filter could
    /// not be evaluated.
    #[error("filter `{rule}` at {position}: {message}")]
    Filtered {
        rule: String,
        position: String,
        message: String,
    },
    /// An event the pipeline does not apply and that no rule of the task filters out: the
    /// task pauses rather than pass over it (docs/architecture.md, "Events dm does not apply").
    #[error("{what} at {position} is not applied: {message}")]
    NotApplied {
        reason: NotApplied,
        /// The event or statement.
        what: String,
        /// End of its source transaction.
        position: String,
        message: String,
    },
    /// Shards merged into one table sent DDLs that cannot be reconciled.
    #[error("shard DDL lock of {target} at {position}: {message}")]
    ShardDdl {
        target: String,
        position: String,
        message: String,
    },
    /// A plugin failed: it trapped, ran out of time or memory, or answered nonsense.
    #[error("plugin `{plugin}` ({hook}) on {table} at {position}: {error}")]
    Plugin {
        plugin: String,
        hook: String,
        table: String,
        position: String,
        error: Box<PluginError>,
    },
    /// A target transaction holding changes of several source transactions failed for
    /// good: the subtask applies them again one source transaction per target transaction,
    /// up to `until`, to name the one at fault (so `binlog skip` knows what to skip).
    #[error("{cause}")]
    Narrow {
        until: crate::position::BinlogPos,
        cause: Box<Error>,
    },
    /// `start-task` found failures in the precheck (`check-task`).
    #[error("precheck failed: {0}")]
    Precheck(String),
    /// A request that is invalid in the current state (unknown task, task already exists, ...).
    #[error("{0}")]
    Invalid(String),
    /// A dm process cannot start: its address is taken, a file it needs cannot be read.
    #[error("{0}")]
    Startup(String),
    /// A bug: something dm assumes did not hold (a task of its own panicked, a worker it
    /// waits for vanished). The subtask restarts from its checkpoint.
    #[error("internal error (a bug in dm): {0}")]
    Internal(String),
    /// A request for an object that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The task was asked to stop or pause.
    #[error("cancelled")]
    Cancelled,
    /// A subtask stopped without pausing (it panicked, or ended on an error that is no
    /// reason to pause); the worker restarts it.
    #[error("subtask stopped unexpectedly: {0}")]
    Crashed(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Why an event is not applied (see `Error::NotApplied`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotApplied {
    /// Row changes written as a statement (binlog_format STATEMENT or MIXED).
    StatementDml,
    /// A statement dm cannot tell the effect of.
    UnknownStatement,
    /// A binlog event type dm cannot apply (compressed, incident, XA, ...).
    UnsupportedEvent,
}

/// Which side of the migration a database is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbRole {
    Source,
    Target,
}

impl std::fmt::Display for DbRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbRole::Source => "source",
            DbRole::Target => "target",
        })
    }
}

/// MySQL server error numbers dm reacts to.
pub mod errno {
    pub const ACCESS_DENIED: u16 = 1045;
    pub const UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
    pub const DBACCESS_DENIED: u16 = 1044;
    pub const TABLEACCESS_DENIED: u16 = 1142;
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const LOCK_DEADLOCK: u16 = 1213;
    pub const TABLE_DEF_CHANGED: u16 = 1412;
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const BAD_DB: u16 = 1049;
    pub const MASTER_FATAL_READING_BINLOG: u16 = 1236;
    pub const TABLE_EXISTS: u16 = 1050;
    pub const BAD_TABLE: u16 = 1051;
    pub const DUP_FIELDNAME: u16 = 1060;
    pub const DUP_KEYNAME: u16 = 1061;
    pub const CANT_DROP_FIELD_OR_KEY: u16 = 1091;
    pub const DB_CREATE_EXISTS: u16 = 1007;
    pub const DB_DROP_EXISTS: u16 = 1008;
    pub const BAD_FIELD: u16 = 1054;
    pub const MULTIPLE_PRI_KEY: u16 = 1068;
    pub const SERVER_SHUTDOWN: u16 = 1053;
    pub const CONN_KILLED: u16 = 1927;
    pub const QUERY_INTERRUPTED: u16 = 1317;
    pub const READ_ONLY: u16 = 1290;
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
}

/// What query-status and the API show of an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub code: String,
    pub message: String,
    pub hint: String,
    pub retryable: bool,
    /// End of the source transaction the error is about, when it is about one: what
    /// `binlog skip` skips.
    #[serde(default)]
    pub position: Option<String>,
}

impl Error {
    /// Stable code of the error kind, shown to users and documented in docs/errors.md.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => codes::CONFIG,
            Error::Meta(_) => codes::META,
            Error::MetaUnavailable(_) => codes::META_UNAVAILABLE,
            Error::LeaseLost(_) => codes::LEASE_LOST,
            Error::Db {
                role: DbRole::Source,
                ..
            } => codes::SOURCE,
            Error::Db {
                role: DbRole::Target,
                ..
            } => codes::TARGET,
            Error::Binlog { .. } => codes::BINLOG,
            Error::Relay { .. } => codes::RELAY,
            Error::UnsupportedDdl { .. } => codes::UNSUPPORTED_DDL,
            Error::Schema { .. } => codes::SCHEMA,
            Error::OnlineDdl { .. } => codes::ONLINE_DDL,
            Error::RowTooBig { .. } => codes::ROW_TOO_BIG,
            Error::Filtered { .. } => codes::FILTERED,
            Error::NotApplied {
                reason: NotApplied::StatementDml,
                ..
            } => codes::STATEMENT_DML,
            Error::NotApplied {
                reason: NotApplied::UnknownStatement,
                ..
            } => codes::UNKNOWN_STATEMENT,
            Error::NotApplied {
                reason: NotApplied::UnsupportedEvent,
                ..
            } => codes::UNSUPPORTED_EVENT,
            Error::ShardDdl { .. } => codes::SHARD_DDL,
            Error::Plugin { .. } => codes::PLUGIN,
            Error::Narrow { cause, .. } => cause.code(),
            Error::Precheck(_) => codes::PRECHECK,
            Error::Invalid(_) => codes::INVALID,
            Error::NotFound(_) => codes::NOT_FOUND,
            Error::Startup(_) => codes::STARTUP,
            Error::Internal(_) => codes::INTERNAL,
            Error::Cancelled => codes::CANCELLED,
            Error::Crashed(_) => codes::CRASHED,
            Error::Io(_) => codes::IO,
        }
    }

    /// Whether trying the same work again later can succeed without a user's help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Db { retryable, .. }
            | Error::Binlog { retryable, .. }
            | Error::Relay { retryable, .. } => *retryable,
            Error::Meta(_)
            | Error::MetaUnavailable(_)
            | Error::Io(_)
            | Error::Crashed(_)
            | Error::Internal(_) => true,
            _ => false,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::Config { hint, .. } => hint.clone(),
            Error::Meta(_) => "check the data dir (standalone) or the etcd endpoints".into(),
            Error::MetaUnavailable(_) => "etcd has no quorum: start the stopped masters (or etcd members) until more than half of them run; `dm ctl list-member --master` shows them".into(),
            Error::LeaseLost(_) => "the worker could not reach etcd in time; the master moves its sources to another worker, nothing to do".into(),
            Error::Db {
                role, errno, addr, ..
            } => match errno {
                Some(errno::ACCESS_DENIED) => format!(
                    "check user and password of the {role} ({addr}) in the {} file; a server that requires TLS (require_secure_transport) also refuses plain connections this way: add `security: {{ssl-ca: ...}}`",
                    if *role == DbRole::Source { "source" } else { "task (target-database)" }
                ),
                Some(
                    errno::DBACCESS_DENIED
                    | errno::TABLEACCESS_DENIED
                    | errno::SPECIFIC_ACCESS_DENIED,
                ) => format!(
                    "grant the missing privilege to dm's user on the {role}; `dm ctl check-task` prints the GRANT to run"
                ),
                _ if self.is_retryable() => {
                    format!("dm retries by itself; check that the {role} at {addr} is up and reachable")
                }
                _ => "fix the statement or the target, then `dm ctl resume-task`".into(),
            },
            Error::Binlog { .. } => {
                if self.is_retryable() {
                    "dm reconnects by itself; check that the source is up".into()
                } else {
                    "the source may have purged the binlog dm needs: restart the task with task-mode all, or restore the binlog files".into()
                }
            }
            Error::Relay { source_id, .. } => format!("check the relay-dir (disk space, permissions) and `dm ctl operate-source show`; `dm ctl stop-relay {source_id}` makes the subtasks read the source directly"),
            Error::UnsupportedDdl { .. } => "apply the statement on the target by hand if it is needed, then `dm ctl binlog skip <task>`, or have dm run a replacement: `dm ctl binlog replace <task> '<statement>'`".into(),
            Error::NotApplied { reason: NotApplied::StatementDml, .. } => "the source logs row changes as statements (binlog_format STATEMENT or MIXED) and dm needs ROW: on the source run SET GLOBAL binlog_format = 'ROW' and set binlog_format=ROW in my.cnf (sessions opened before keep their format); then `dm ctl binlog replace <task> '<statement>'` runs the statement on the target (or `dm ctl binlog skip <task>` and repair the tables it changed with `dm ctl verify <task> --fix`)".into(),
            Error::NotApplied { reason: NotApplied::UnknownStatement, .. } => "dm cannot tell what this statement changes: do on the target what it needs by hand, then `dm ctl binlog skip <task>`, or `dm ctl binlog replace <task> '<statement>'` to run a statement instead".into(),
            Error::NotApplied { reason: NotApplied::UnsupportedEvent, .. } => "change the source setting the message names, then `dm ctl binlog skip <task>` skips this transaction (its changes are missing on the target until `dm ctl verify <task> --fix`)".into(),
            Error::ShardDdl { target, .. } => format!("make the shards agree, then `dm ctl shard-ddl-lock unlock <task> {target} --exec` (run the DDL once) or `--skip` (it is done by hand); or `dm ctl binlog replace <task> '<statement>'` to send this shard's DDL as another statement"),
            Error::Plugin { error, .. } => error.hint(),
            Error::Filtered { .. } => "change the task's `filters` / `expression-filter` (stop-task, edit, start-task), or skip the event".into(),
            Error::RowTooBig { bytes, .. } => format!("raise max_allowed_packet on the target to at least {} (SET GLOBAL max_allowed_packet = {}; and in its config file), then `dm ctl resume-task <task>`", bytes + (1 << 20), (bytes + (1 << 20)).next_power_of_two()),
            Error::OnlineDdl { table, .. } => format!("run on the target's {table} the ALTER the tool ran on its shadow table (its --alter), then `dm ctl binlog skip <task>`; or `dm ctl binlog replace <task> '<ALTER TABLE ...>'` to have dm run it at this position (an empty ALTER list: `binlog skip`); set `online-ddl: false` if these are not a tool's tables"),
            Error::Schema { .. } => "the tracked schema differs from the binlog; make sure binlog_row_metadata=FULL and that no DDL was filtered out for this table".into(),
            Error::Narrow { cause, .. } => cause.hint(),
            Error::Precheck(_) => "fix each failure as it says and start the task again; to start anyway, name the checks in the task's `ignore-checking-items` or run `dm ctl start-task --skip-precheck`".into(),
            Error::Invalid(_) | Error::NotFound(_) | Error::Startup(_) | Error::Internal(_) => {
                self.table_fix().into()
            }
            Error::Cancelled => String::new(),
            Error::Crashed(_) => "the worker restarts the subtask from its checkpoint with backoff; if it keeps stopping, send the worker's log to dm's developers".into(),
            Error::Io(_) => "check disk space and permissions of the data dir".into(),
        }
    }

    /// The usual way out of this error's code (`codes::ALL`).
    fn table_fix(&self) -> &'static str {
        codes::info(self.code()).map_or("", |c| c.fix)
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            code: self.code().to_string(),
            message: self.to_string(),
            hint: self.hint(),
            retryable: self.is_retryable(),
            position: match self {
                Error::UnsupportedDdl { position, .. }
                | Error::OnlineDdl { position, .. }
                | Error::Schema { position, .. }
                | Error::RowTooBig { position, .. }
                | Error::Filtered { position, .. }
                | Error::NotApplied { position, .. }
                | Error::ShardDdl { position, .. } => Some(position.clone()),
                Error::Db { position, .. } => position.clone(),
                // A binlog position when the plugin failed in the incremental phase.
                Error::Plugin { position, .. } if position.contains(':') => Some(position.clone()),
                _ => None,
            },
        }
    }

    /// Wraps a mysql_async error met while talking to `role` at `addr`.
    pub fn db(role: DbRole, addr: &str, err: mysql_async::Error) -> Self {
        let (errno, retryable) = match &err {
            mysql_async::Error::Server(se) => (Some(se.code), is_retryable_errno(se.code)),
            mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => (None, true),
            _ => (None, false),
        };
        Error::Db {
            role,
            addr: addr.to_string(),
            message: err.to_string(),
            errno,
            retryable,
            position: None,
        }
    }

    /// A database error about the source transaction ending at `position`: says what dm was
    /// doing and records the position (what `binlog skip|replace|inject` act on).
    pub fn during(mut self, doing: impl std::fmt::Display, position: &str) -> Self {
        if let Error::Db {
            message,
            position: at,
            ..
        } = &mut self
        {
            *message = format!("{message}; {doing}");
            *at = Some(position.to_string());
        }
        self
    }

    /// The server error number, when this is a server error.
    pub fn errno(&self) -> Option<u16> {
        match self {
            Error::Db { errno, .. } => *errno,
            _ => None,
        }
    }
}

/// At most `max` bytes of `text` (cut at a character boundary, marked with ` ...`): how much
/// of a statement an error shows.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ...", &text[..cut])
}

/// Server errors that go away when the same statement is tried again later.
fn is_retryable_errno(code: u16) -> bool {
    matches!(
        code,
        errno::LOCK_WAIT_TIMEOUT
            | errno::LOCK_DEADLOCK
            | errno::SERVER_SHUTDOWN
            | errno::CONN_KILLED
            | errno::QUERY_INTERRUPTED
            | errno::TOO_MANY_CONNECTIONS
            | errno::READ_ONLY
            | 2002..=2013
    )
}

#[cfg(test)]
mod code_tests {
    use super::*;

    /// One error of every kind (a new variant without one here fails `every_code_is_used`
    /// only if it brings a new code; its code comes from `codes` either way).
    fn one_of_each() -> Vec<Error> {
        let text = || "x".to_string();
        let db = |role| Error::Db {
            role,
            addr: text(),
            message: text(),
            errno: None,
            retryable: false,
            position: None,
        };
        let not_applied = |reason| Error::NotApplied {
            reason,
            what: text(),
            position: text(),
            message: text(),
        };
        vec![
            Error::Config {
                file: text(),
                line: 1,
                column: 1,
                message: text(),
                hint: text(),
            },
            Error::Meta(text()),
            Error::MetaUnavailable(text()),
            Error::LeaseLost(text()),
            db(DbRole::Source),
            db(DbRole::Target),
            Error::Binlog {
                source_id: text(),
                position: text(),
                message: text(),
                retryable: true,
            },
            Error::Relay {
                source_id: text(),
                message: text(),
                retryable: true,
            },
            Error::UnsupportedDdl {
                position: text(),
                statement: text(),
                message: text(),
            },
            Error::OnlineDdl {
                table: text(),
                position: text(),
                statement: text(),
                message: text(),
            },
            Error::RowTooBig {
                table: text(),
                key: text(),
                position: text(),
                bytes: 1,
                packet: 1,
            },
            Error::Schema {
                table: text(),
                position: text(),
                message: text(),
            },
            Error::Filtered {
                rule: text(),
                position: text(),
                message: text(),
            },
            not_applied(NotApplied::StatementDml),
            not_applied(NotApplied::UnknownStatement),
            not_applied(NotApplied::UnsupportedEvent),
            Error::ShardDdl {
                target: text(),
                position: text(),
                message: text(),
            },
            Error::Plugin {
                plugin: text(),
                hook: text(),
                table: text(),
                position: text(),
                error: Box::new(PluginError::Trapped(text())),
            },
            Error::Precheck(text()),
            Error::Invalid(text()),
            Error::NotFound(text()),
            Error::Startup(text()),
            Error::Internal(text()),
            Error::Cancelled,
            Error::Crashed(text()),
            Error::Io(std::io::Error::other("x")),
        ]
    }

    #[test]
    fn every_code_is_used_and_every_error_has_a_listed_code_and_a_hint() {
        let mut unused: std::collections::BTreeSet<&str> =
            codes::ALL.iter().map(|c| c.code).collect();
        // Codes that are not `Error`s: the API's refusals and a subtask no worker runs.
        for elsewhere in [
            codes::NO_CREDENTIALS,
            codes::NOT_ALLOWED,
            codes::WRONG_HOST,
            codes::NOT_JSON,
            codes::NO_WORKER,
        ] {
            unused.remove(elsewhere);
        }
        for e in one_of_each() {
            assert!(codes::info(e.code()).is_some(), "{e:?}: {}", e.code());
            assert!(
                matches!(e, Error::Cancelled) || !e.hint().is_empty(),
                "{e:?} has no hint"
            );
            unused.remove(e.code());
        }
        assert!(unused.is_empty(), "codes no error has: {unused:?}");
    }

    #[test]
    fn bugs_retry_and_startup_failures_do_not() {
        assert!(Error::Internal("x".into()).is_retryable());
        assert!(!Error::Startup("x".into()).is_retryable());
        assert_eq!(Error::Startup("x".into()).code(), codes::STARTUP);
    }
}
