//! `dm ctl`'s command line: every command, its arguments and their help.

pub use super::subcommands::*;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Args)]
pub struct CtlArgs {
    /// Address of the master's API (default: master-addr of ./dm.yaml, else 127.0.0.1:8261);
    /// several masters of a cluster separated by commas: the first that answers is used.
    #[arg(long, env = "DM_MASTER_ADDR", global = true)]
    pub master_addr: Option<String>,
    /// PEM of the CA that signed the master's API certificate: talk HTTPS (default: `tls.ca`
    /// or `tls.cert` of ./dm.yaml when it has `tls`).
    #[arg(long, env = "DM_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate and key, for a master that requires one (`tls.cert-allowed-cn`).
    #[arg(long, env = "DM_TLS_CERT", global = true, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "DM_TLS_KEY", global = true, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Token for a master whose API asks for one (`auth.tokens`).
    #[arg(long, env = "DM_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What `throttle` does.
#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ThrottleAction {
    On,
    Off,
    Rate,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
pub enum CtlCommand {
    /// Create, show or stop upstream sources.
    OperateSource {
        #[command(subcommand)]
        op: SourceOp,
    },
    /// Keep the source's binlog on its worker (relay log); its subtasks read from there.
    StartRelay(RelayArgs),
    /// Stop the relay log of a source; its subtasks read the source directly again.
    StopRelay(RelayArgs),
    /// Stop pulling the source's binlog into the relay; subtasks read what it holds.
    PauseRelay(RelayArgs),
    /// Pull the source's binlog into the relay again.
    ResumeRelay(RelayArgs),
    /// Remove relay log files that no task needs any more.
    PurgeRelay {
        source_id: String,
        /// Remove only the files before this one.
        #[arg(long)]
        filename: Option<String>,
    },
    /// Start a task from its task file.
    StartTask {
        file: PathBuf,
        /// Forget the task's checkpoints in the target and start over.
        #[arg(long)]
        remove_meta: bool,
        /// Start even when the precheck (`check-task`) finds failures.
        #[arg(long)]
        skip_precheck: bool,
        /// Replicate from the first transaction written at or after this time (TiDB DM's
        /// flag): `2021-10-21 00:01:00` in the source's time zone, or with an offset
        /// (`2021-10-21T00:01:00+08:00`). Changes up to now are applied in safe mode.
        #[arg(long)]
        start_time: Option<String>,
    },
    /// Apply a changed task file (rules, plugins, tuning) to a running task: its subtasks
    /// restart from their checkpoints with it.
    UpdateTask { file: PathBuf },
    /// Stop a task (its checkpoints stay in the target; start-task resumes from them). The
    /// task's name or its task file.
    StopTask {
        name: String,
        /// Only the subtasks of these sources (the task goes on with the others).
        #[arg(short, long = "source")]
        source: Vec<String>,
    },
    /// Pause a task: its name or its task file.
    PauseTask {
        name: String,
        /// Only the subtasks of these sources.
        #[arg(short, long = "source")]
        source: Vec<String>,
    },
    /// Hold a task (`on`), let it go (`off`), or limit its rows per second (`rate N`, 0: no
    /// limit), at once and without a restart.
    Throttle {
        name: String,
        action: ThrottleAction,
        /// Rows per second, for `rate`.
        rows_per_second: Option<u64>,
    },
    /// Copy tables of a running task again while it runs (after verify found differences):
    /// re-created in the target, copied, caught up with the binlog, then applied as before.
    Resync {
        name: String,
        /// Tables as schema.table.
        #[arg(required = true)]
        tables: Vec<String>,
        /// Only from these sources.
        #[arg(short, long = "source")]
        source: Vec<String>,
    },
    /// Resume a task paused by a user or by an error: its name or its task file.
    ResumeTask {
        name: String,
        /// Only the subtasks of these sources.
        #[arg(short, long = "source")]
        source: Vec<String>,
    },
    /// The stored task or source file, as start-task and operate-source create take it back
    /// (passwords encrypted): TiDB DM's get-config.
    GetConfig {
        /// task or source
        kind: String,
        name: String,
        /// Write it to this file instead of printing it.
        #[arg(short, long)]
        file: Option<PathBuf>,
    },
    /// Every source and task file: export into a directory, import from one (backup, moving
    /// to another deployment); imported tasks resume from their checkpoints.
    Config {
        #[command(subcommand)]
        op: ConfigOp,
    },
    /// Stage, phase, progress, position, lag and last error of tasks.
    QueryStatus {
        /// A task's name or its task file.
        name: Option<String>,
        /// Only the subtasks of these sources.
        #[arg(short, long = "source")]
        source: Vec<String>,
        /// Draw progress bars and follow the task until it finishes or pauses.
        #[arg(long, requires = "name")]
        watch: bool,
        /// Every counter of every subtask (worker, rows loaded and applied, rates, queue, the
        /// error's hint) in a wide table; by default a table that fits 100 columns.
        #[arg(long)]
        wide: bool,
        /// TiDB DM's flag for every task's detail: as `--wide`.
        #[arg(long)]
        more: bool,
    },
    /// Compare source and target of a task chunk by chunk; print differing rows and the
    /// statements that fix them.
    Verify {
        name: String,
        /// Run the fixing statements on the target.
        #[arg(long)]
        fix: bool,
    },
    /// Continuous validation: verify the task again and again in the background.
    Validation {
        #[command(subcommand)]
        op: ValidationOp,
    },
    /// Check sources and target of a task file before starting it.
    CheckTask { file: PathBuf },
    /// Act on the binlog event a task stopped at.
    Binlog {
        #[command(subcommand)]
        op: BinlogOp,
    },
    /// Shard DDL locks: which shards sent which DDL, which the lock waits for, conflicts;
    /// `unlock` resolves a stuck one.
    #[command(args_conflicts_with_subcommands = true)]
    ShardDdlLock {
        #[command(subcommand)]
        op: Option<LockOp>,
        /// Only this task's locks.
        task: Option<String>,
    },
    /// Print the encrypted form of a password for source and task files (`enc:...`); the key
    /// is DM_SECRET_KEY (64 hex digits), the same for every dm process. The password is read
    /// from standard input (one line) unless given as an argument, where other users of the
    /// machine can see it in the process list.
    Encrypt {
        plaintext: Option<String>,
        /// The deployment's key file (default: DM_SECRET_KEY, else the key of ./dm.yaml's
        /// standalone: its secret-key-path or <data-dir>/secret.key).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// API tokens (runs here, without a master).
    Token {
        #[command(subcommand)]
        op: TokenOp,
    },
    /// Work with plugin files (runs here, without a master).
    Plugin {
        #[command(subcommand)]
        op: PluginOp,
    },
    /// The schema dm tracks for a source's tables: list, or fix one (the task paused).
    BinlogSchema {
        #[command(subcommand)]
        op: SchemaOp,
    },
    /// Masters (and which leads) and workers (and what they run).
    ListMember {
        /// Only the masters.
        #[arg(long)]
        master: bool,
        /// Only the workers.
        #[arg(long)]
        worker: bool,
        /// Only the leader.
        #[arg(long)]
        leader: bool,
    },
    /// Forget a master or worker that is not running any more.
    OfflineMember {
        #[arg(long, conflicts_with = "worker", required_unless_present = "worker")]
        master: bool,
        #[arg(long)]
        worker: bool,
        #[arg(long)]
        name: String,
    },
    /// Move a source to another live worker.
    TransferSource { source_id: String, worker: String },
    /// `evict`: the leader steps down and stays a follower; `cancel-evict` undoes that.
    OperateLeader {
        #[arg(value_parser = ["evict", "cancel-evict"])]
        op: String,
    },
}
