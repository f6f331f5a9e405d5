//! Every error code dm shows, in one table: what it means and what to do. `Error::code` and the
//! API's refusals take their codes from here; docs/errors.md is this table (a test compares
//! them), and a code, once published, keeps its meaning.

/// One code: what happened and the usual way out (the error's hint says it for the case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    pub code: &'static str,
    pub what: &'static str,
    pub fix: &'static str,
}

macro_rules! codes {
    ($($name:ident = $code:literal, $what:literal, $fix:literal;)*) => {
        $(pub const $name: &str = $code;)*
        /// Every code, in the order docs/errors.md lists them.
        pub const ALL: &[CodeInfo] = &[$(CodeInfo { code: $code, what: $what, fix: $fix }),*];
    };
}

codes! {
    CONFIG = "DM-CONFIG-1001", "a config file is malformed", "the message names file, line and field";
    META = "DM-META-2001", "the metadata store failed", "check the data dir";
    META_UNAVAILABLE = "DM-META-2002", "etcd does not answer (no quorum) or no master leads", "start stopped masters until more than half run";
    LEASE_LOST = "DM-CLUSTER-2101", "a worker's lease ran out: it stops writing for its sources", "nothing: the leader moves them to another worker";
    NO_WORKER = "DM-CLUSTER-2102", "no worker runs the source (subtask `waiting`)", "start a worker or free one";
    SOURCE = "DM-SOURCE-3001", "the source refused or failed a request", "wrong password, missing privilege, server down (retried)";
    TARGET = "DM-TARGET-4001", "the target refused or failed a request", "as above; DDL and row failures name the statement, table and binlog positions";
    ROW_TOO_BIG = "DM-TARGET-4002", "a row's statement is larger than the target's `max_allowed_packet`", "raise it on the target as the hint says (`SET GLOBAL max_allowed_packet = N` and in its config), then `resume-task`";
    BINLOG = "DM-BINLOG-5001", "the binlog stream failed", "reconnects by itself; \"purged\" needs a new full phase";
    RELAY = "DM-RELAY-5101", "the relay log of a source cannot be written or read (disk, a gap in the stream)", "the relay retries by itself; check relay-dir; `dm ctl stop-relay <source>` reads the source directly";
    UNSUPPORTED_DDL = "DM-DDL-6001", "a table DDL dm cannot understand", "apply it on the target by hand, then `binlog skip`; or `binlog replace <task> '<statement>'`";
    SCHEMA = "DM-SCHEMA-6002", "a row does not match the tracked table", "binlog_row_image=FULL, no filtered DDL";
    FILTERED = "DM-FILTER-6003", "a `filters` rule with `action: Error` refused an event, or an expression filter failed", "the message names the rule, the event and the position";
    ONLINE_DDL = "DM-DDL-6004", "gh-ost/pt-osc swapped in a shadow table whose ALTERs dm did not see (the tool started before the task's position), or renamed its tables in a way no such tool does", "run the tool's ALTER on the target table, then `binlog skip`; or `binlog replace <task> '<ALTER ...>'`; `online-ddl: false` if the tables are not a tool's";
    SHARD_DDL = "DM-SHARD-6101", "shards merged into one table sent DDLs that cannot be reconciled (or the target refused the DDL)", "`shard-ddl-lock unlock <task> <table> --exec/--skip`, or `binlog replace`/`skip` on the paused subtask";
    PLUGIN = "DM-PLUGIN-6201", "a plugin trapped, ran past its deadline, outgrew its memory, answered nonsense or did not load (wrong ABI)", "the message names plugin, hook, table and position; fix the plugin, `binlog skip` the transaction, or resume";
    STATEMENT_DML = "DM-EVENT-6301", "row changes logged as a statement (binlog_format STATEMENT or MIXED, statement LOAD DATA) on a migrated table", "`SET GLOBAL binlog_format = 'ROW'` on the source (and in my.cnf); `binlog replace <task> '<statement>'`, or `binlog skip` and `verify --fix`";
    UNKNOWN_STATEMENT = "DM-EVENT-6302", "a statement dm cannot tell the effect of (XA, sequences, unknown statements)", "do what it needs on the target by hand, then `binlog skip`; or `binlog replace`";
    UNSUPPORTED_EVENT = "DM-EVENT-6303", "a binlog event type dm cannot apply (incident, XA prepare, compressed events)", "the message names the source setting to change; `binlog skip` skips the transaction";
    INVALID = "DM-REQUEST-7001", "a request that is invalid in the current state (a task that already runs, a wrong argument)", "the message says what is wrong; `dm ctl <command> --help`";
    NOT_FOUND = "DM-REQUEST-7002", "a request for a task, source, member or lock that does not exist", "`dm ctl query-status`, `operate-source show`, `list-member` list what exists";
    PRECHECK = "DM-CHECK-7101", "`start-task`'s precheck found failures", "fix each as it says; `ignore-checking-items` or `start-task --skip-precheck` to start anyway";
    NO_CREDENTIALS = "DM-API-7301", "401: the master asks for a token and got none, or an unknown one", "`dm ctl --token <token>` or `DM_TOKEN` (docs/security.md)";
    NOT_ALLOWED = "DM-API-7302", "403: a viewer's token tried to change something", "use an admin token";
    WRONG_HOST = "DM-API-7303", "403: the `Host` header does not name this master", "reach it by its address or a name in `api-hosts`";
    NOT_JSON = "DM-API-7304", "415: a POST without `Content-Type: application/json`", "send JSON";
    CANCELLED = "DM-TASK-8001", "a subtask was stopped or paused while it worked (what it was doing is not finished)", "nothing: `resume-task` goes on from its checkpoint";
    CRASHED = "DM-TASK-8002", "a subtask stopped without a pause (panic, lost apply lock); shown with stage `error`", "nothing: the worker restarts it from its checkpoint with backoff";
    STARTUP = "DM-STARTUP-9801", "a dm process cannot start: its address is taken, a file it needs cannot be read", "the message names the address or file and the config field to change";
    IO = "DM-IO-9001", "local I/O", "disk space, permissions";
    INTERNAL = "DM-INTERNAL-9901", "a bug in dm: something it assumes did not hold (a worker task panicked, an apply worker vanished)", "the subtask restarts from its checkpoint; send the worker's log to dm's developers";
}

/// The entry of `code`.
pub fn info(code: &str) -> Option<&'static CodeInfo> {
    ALL.iter().find(|c| c.code == code)
}
