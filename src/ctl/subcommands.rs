//! The operations of `dm ctl`'s commands that group several (`binlog`, `binlog-schema`,
//! `operate-source`, `shard-ddl-lock`, ...): their arguments and their help.

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BinlogOp {
    /// Skip the transaction each paused subtask of the task stopped at, and resume; with
    /// -b, the transaction ending at that position, when the task reaches it.
    Skip {
        name: String,
        #[command(flatten)]
        at: PositionArgs,
    },
    /// Replace that transaction by statements run on the target instead, and resume.
    Replace {
        name: String,
        #[arg(required = true)]
        sql: Vec<String>,
        #[command(flatten)]
        at: PositionArgs,
    },
    /// Run statements on the target before that transaction (e.g. what a failing DDL needs),
    /// then apply it, and resume.
    Inject {
        name: String,
        #[arg(required = true)]
        sql: Vec<String>,
        #[command(flatten)]
        at: PositionArgs,
    },
    /// The skips, replacements and injections recorded for a task.
    List { name: String },
    /// Forget the skip, replacement or injection recorded at -b file:pos.
    Revert {
        name: String,
        #[command(flatten)]
        at: PositionArgs,
    },
}

#[derive(Args)]
pub struct PositionArgs {
    /// End of the transaction (`file:pos`) instead of the one a subtask paused at (for
    /// revert: the position of the operation).
    #[arg(short = 'b', long = "binlog-pos")]
    pub position: Option<String>,
    /// The source of that position (needed when the task has several).
    #[arg(short, long, requires = "position")]
    pub source: Option<String>,
}

#[derive(Subcommand)]
pub enum SchemaOp {
    /// Tracked tables and their columns.
    List {
        task: String,
        #[arg(short, long)]
        source: Option<String>,
    },
    /// Track `schema.table` as the CREATE TABLE in `file` says, or as the source or the
    /// target has the table now.
    Update {
        task: String,
        table: String,
        #[arg(required_unless_present_any = ["from_source", "from_target"])]
        file: Option<PathBuf>,
        #[arg(short, long)]
        source: Option<String>,
        /// The definition the source has now.
        #[arg(long, conflicts_with_all = ["file", "from_target"])]
        from_source: bool,
        /// The definition the target has now (under the table's routed name).
        #[arg(long, conflicts_with = "file")]
        from_target: bool,
    },
    /// Stop tracking `schema.table` (dm reads it from the target when rows come).
    Delete {
        task: String,
        table: String,
        #[arg(short, long)]
        source: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TokenOp {
    /// Make a token: prints it (once) and the `auth.tokens` entry for the masters' config.
    New {
        /// Who will hold it.
        #[arg(long)]
        name: String,
        /// `admin` (everything) or `viewer` (reads only).
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum PluginOp {
    /// Load a plugin, report its ABI and hooks, run it on sample rows.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
pub enum LockOp {
    /// Release every shard waiting at a DDL of the merged table `target` (`schema.table`):
    /// `--exec` runs the DDL most of them sent once, `--skip` runs nothing (done by hand).
    Unlock {
        task: String,
        target: String,
        #[arg(long, conflicts_with = "skip", required_unless_present = "skip")]
        exec: bool,
        #[arg(long)]
        skip: bool,
        /// With --exec: run the DDL this source sent, in its statement's session (TiDB DM's
        /// `-o owner`; dm's `-o` is `--output`).
        #[arg(long, requires = "exec")]
        owner: Option<String>,
        /// With --exec: release the lock even if the DDL fails on the target.
        #[arg(short = 'f', long, requires = "exec")]
        force_remove: bool,
    },
}

#[derive(Subcommand)]
pub enum ValidationOp {
    /// Start validating (every --interval seconds after the last run ended).
    Start {
        name: String,
        #[arg(long, default_value_t = 60)]
        interval: u64,
    },
    Stop {
        name: String,
    },
    /// The last run: equal or the differing rows with their fix.
    Status {
        name: String,
    },
}

/// `<verb>-relay <source>`.
#[derive(Args)]
pub struct RelayArgs {
    pub source_id: String,
}

#[derive(Subcommand)]
pub enum SourceOp {
    /// Create sources from their files.
    Create {
        #[arg(required_unless_present = "print_sample_config")]
        files: Vec<PathBuf>,
        /// Print a sample source file.
        #[arg(short, long)]
        print_sample_config: bool,
    },
    /// Replace a source's file (no task may use the source).
    Update {
        file: PathBuf,
    },
    Show {
        /// Only these sources.
        #[arg(short, long = "source")]
        source: Vec<String>,
    },
    Stop {
        source_id: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigOp {
    /// Write every source to <path>/sources/<id>.yaml and task to <path>/tasks/<name>.yaml.
    Export {
        #[arg(short, long)]
        path: PathBuf,
    },
    /// Create the sources and start the tasks of an exported directory.
    Import {
        #[arg(short, long)]
        path: PathBuf,
    },
}
