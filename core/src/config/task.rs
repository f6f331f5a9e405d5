//! `task.yaml`: what to migrate from which sources into which target.

use super::{parse_yaml, semantic_error, DbConfig};
use crate::error::Result;
use crate::position::is_binlog_name;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TaskConfig {
    /// Warnings about parts of the file left out when it was read (not a field).
    #[serde(skip)]
    pub left_out: Vec<String>,
    pub name: String,
    #[serde(default)]
    pub task_mode: TaskMode,
    /// Schema in the target where dm keeps checkpoints and load progress.
    #[serde(default = "default_meta_schema")]
    pub meta_schema: String,
    /// TiDB DM's `case-sensitive`: schema and table patterns (block-allow list, routes,
    /// filters) match names exactly; by default case-insensitively.
    #[serde(default)]
    pub case_sensitive: bool,
    pub target_database: DbConfig,
    pub mysql_instances: Vec<MysqlInstance>,
    /// Named table selections, referenced from `mysql-instances[].block-allow-list`.
    #[serde(default)]
    pub block_allow_list: BTreeMap<String, BlockAllowList>,
    /// Tuning of the full phase.
    #[serde(default)]
    pub mydumpers: BTreeMap<String, DumperConfig>,
    /// Tuning of the incremental phase.
    #[serde(default)]
    pub syncers: BTreeMap<String, SyncerConfig>,
    /// Dump directories to import (`task-mode: load` and `load&sync`), referenced from
    /// `mysql-instances[].loader-config-name`.
    #[serde(default)]
    pub loaders: BTreeMap<String, LoaderConfig>,
    /// Binlog event filter rules, referenced from `mysql-instances[].filter-rules`.
    #[serde(default)]
    pub filters: BTreeMap<String, FilterRule>,
    /// Row filters by expression, referenced from `mysql-instances[].expression-filters`.
    #[serde(default)]
    pub expression_filter: BTreeMap<String, ExpressionFilter>,
    /// Table routing rules, referenced from `mysql-instances[].route-rules`.
    #[serde(default)]
    pub routes: BTreeMap<String, RouteRule>,
    /// How DDLs of shards merged into one table are coordinated; none: each shard's DDL runs
    /// as it comes.
    #[serde(default)]
    pub shard_mode: Option<ShardMode>,
    /// WASM plugins, referenced from `mysql-instances[].plugins`.
    #[serde(default)]
    pub plugins: BTreeMap<String, super::PluginSpec>,
    /// A plugin (of `plugins`) deciding shard DDL locks instead of `shard-mode`'s policy.
    #[serde(default)]
    pub shard_ddl_policy: Option<String>,
    /// Prechecks whose failures do not stop `start-task` (TiDB DM's item names, `all`).
    #[serde(default)]
    pub ignore_checking_items: Vec<String>,
    /// gh-ost and pt-online-schema-change on the source (TiDB DM's `online-ddl`): their
    /// shadow and trash tables are not migrated, the ALTERs run on a shadow table are applied
    /// to the real table when the tool swaps it in.
    #[serde(default = "yes")]
    pub online_ddl: bool,
    /// Names of shadow tables: regular expressions capturing the real table's name.
    #[serde(default = "default_shadow_rules")]
    pub shadow_table_rules: Vec<String>,
    /// Names of trash (and bookkeeping) tables: regular expressions capturing the real name.
    #[serde(default = "default_trash_rules")]
    pub trash_table_rules: Vec<String>,
    /// Apply tables linked by foreign keys with the target's foreign key checks on, so that
    /// cascades (`ON DELETE CASCADE`, `SET NULL`, ...), whose row changes the source does not
    /// write to its binlog, happen on the target too: such tables are copied in one snapshot
    /// and their changes applied in binlog order, exactly once (`sync/linked.rs`).
    #[serde(default)]
    pub foreign_key_checks: bool,
}

fn default_shadow_rules() -> Vec<String> {
    super::online_ddl::DEFAULT_SHADOW_RULES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn default_trash_rules() -> Vec<String> {
    super::online_ddl::DEFAULT_TRASH_RULES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// TiDB DM's `shard-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardMode {
    /// A DDL holds its shard's later rows until every shard sent the same DDL; then it runs
    /// once downstream.
    Pessimistic,
    /// Additive changes run at once, drops once every shard dropped, the rest pauses.
    Optimistic,
}

/// Routes tables of matching schemas (and tables) to another schema (and table); shards
/// routed to one table can keep where each row came from in extra columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RouteRule {
    pub schema_pattern: String,
    #[serde(default)]
    pub table_pattern: Option<String>,
    pub target_schema: String,
    #[serde(default)]
    pub target_table: Option<String>,
    #[serde(default)]
    pub extract_table: Option<Extract>,
    #[serde(default)]
    pub extract_schema: Option<Extract>,
    #[serde(default)]
    pub extract_source: Option<Extract>,
}

/// Writes what a regular expression captures of a name into a target column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Extract {
    #[serde(
        alias = "table-regexp",
        alias = "schema-regexp",
        alias = "source-regexp"
    )]
    pub regexp: String,
    pub target_column: String,
}

/// A binlog event filter rule: events of the matching tables, or statements matching a
/// pattern, are ignored (`Ignore`), the only ones kept (`Do`), or refused (`Error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FilterRule {
    pub schema_pattern: String,
    #[serde(default)]
    pub table_pattern: Option<String>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub sql_pattern: Vec<String>,
    pub action: FilterAction,
}

impl FilterRule {
    /// An event it lists that TiDB DM does not know: DM leaves such a rule out (it logs an
    /// error and filters nothing by it), and so does dm, with a warning.
    pub fn unknown_event(&self) -> Option<&str> {
        self.events
            .iter()
            .find(|e| !FILTER_EVENTS.contains(&e.to_ascii_lowercase().as_str()))
            .map(String::as_str)
    }

    /// The warning for a rule left out for `unknown_event`.
    pub fn left_out(at: &str, event: &str) -> String {
        format!(
            "{at}: the event `{event}` is not one TiDB DM knows: DM leaves this whole rule out (it logs an error), and so does dm: nothing is filtered by it. To make it work, name known events ({})",
            FILTER_EVENTS.join(", ")
        )
    }

    /// Its SQL patterns compile: (key, message, hint) otherwise.
    pub fn check(&self, at: &str) -> std::result::Result<(), (&'static str, String, String)> {
        if let Some((p, e)) = self
            .sql_pattern
            .iter()
            .find_map(|p| regex::Regex::new(p).err().map(|e| (p, e)))
        {
            return Err((
                "sql-pattern",
                format!("{at}.sql-pattern: `{p}`: {e}"),
                "write a regular expression (Rust regex syntax)".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterAction {
    #[serde(alias = "ignore")]
    Ignore,
    #[serde(alias = "do")]
    Do,
    #[serde(alias = "error")]
    Error,
}

/// Rows of one table dropped when an expression over their values is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExpressionFilter {
    pub schema: String,
    pub table: String,
    #[serde(default)]
    pub insert_value_expr: Option<String>,
    #[serde(default)]
    pub update_old_value_expr: Option<String>,
    #[serde(default)]
    pub update_new_value_expr: Option<String>,
    #[serde(default)]
    pub delete_value_expr: Option<String>,
}

/// Event names a filter rule may list: TiDB DM's (`pkg/binlog-filter`), its finer ALTER
/// TABLE names included, and its aliases (`create schema` for `create database`, ...).
pub const FILTER_EVENTS: &[&str] = &[
    "all",
    "all dml",
    "all ddl",
    "none",
    "none dml",
    "none ddl",
    "insert",
    "update",
    "delete",
    "create database",
    "drop database",
    "alter database",
    "create schema",
    "drop schema",
    "alter schema",
    "create table",
    "drop table",
    "alter table",
    "rename table",
    "truncate table",
    "create index",
    "drop index",
    "create view",
    "drop view",
    "incompatible ddl changes",
    "add column",
    "drop column",
    "modify column",
    "rename column",
    "rename index",
    "set default value",
    "modify default value",
    "modify constraint",
    "modify columns order",
    "modify charset",
    "modify collation",
    "modify storage engine",
    "modify table comment",
    "modify table charset and collate",
    "modify schema charset and collate",
    "add primary key",
    "drop primary key",
    "drop unique key",
    "add foreign key",
    "drop foreign key",
    "rebase auto id",
    "remove auto increment",
    "value range decrease",
    "precision decrease",
    "add table partition",
    "drop table partition",
    "truncate table partition",
    "reorganize table partition",
    "rebuild table partition",
    "coalesce table partition",
    "split table partition",
    "exchange table partition",
    "alter table partitioning",
    "remove table partitioning",
    "alter index visibility",
    "recover table",
    "multi schema change",
];

fn default_meta_schema() -> String {
    "dm_meta".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskMode {
    /// Full phase, then incremental phase.
    #[default]
    All,
    /// Full phase only.
    Full,
    /// Incremental phase only, from `meta` or the source's current position.
    Incremental,
    /// TiDB DM's `load`: import a dump directory (mydumper's or dumpling's) into the target.
    Load,
    /// TiDB DM's `load&sync`: import a dump directory, then replicate from its position.
    #[serde(rename = "load&sync")]
    LoadSync,
    /// TiDB DM's `dump`: write the source's selected tables as a dump directory (mydumper's
    /// layout) under the instance's `loaders` dir, nothing to the target.
    Dump,
}

impl TaskMode {
    pub fn has_full(self) -> bool {
        matches!(self, TaskMode::All | TaskMode::Full)
    }
    pub fn has_incremental(self) -> bool {
        matches!(
            self,
            TaskMode::All | TaskMode::Incremental | TaskMode::LoadSync
        )
    }
    /// Imports a dump directory first.
    pub fn has_load(self) -> bool {
        matches!(self, TaskMode::Load | TaskMode::LoadSync)
    }

    /// As task files write it.
    pub fn name(self) -> &'static str {
        match self {
            TaskMode::All => "all",
            TaskMode::Full => "full",
            TaskMode::Incremental => "incremental",
            TaskMode::Load => "load",
            TaskMode::LoadSync => "load&sync",
            TaskMode::Dump => "dump",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MysqlInstance {
    pub source_id: String,
    /// Where the incremental phase starts when `task-mode` is `incremental`.
    #[serde(default)]
    pub meta: Option<BinlogMeta>,
    /// Name of an entry of the task's `block-allow-list`.
    #[serde(default)]
    pub block_allow_list: Option<String>,
    /// Name of an entry of the task's `mydumpers`.
    #[serde(default)]
    pub mydumper_config_name: Option<String>,
    /// The `loaders` entry with the dump directory (`task-mode: load` and `load&sync`).
    #[serde(default)]
    pub loader_config_name: Option<String>,
    /// Name of an entry of the task's `syncers`.
    #[serde(default)]
    pub syncer_config_name: Option<String>,
    /// Names of entries of the task's `filters`.
    #[serde(default)]
    pub filter_rules: Vec<String>,
    /// Names of entries of the task's `expression-filter`.
    #[serde(default)]
    pub expression_filters: Vec<String>,
    /// Names of entries of the task's `routes`.
    #[serde(default)]
    pub route_rules: Vec<String>,
    /// Names of entries of the task's `plugins`, run in this order.
    #[serde(default)]
    pub plugins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BinlogMeta {
    #[serde(default)]
    pub binlog_name: Option<String>,
    #[serde(default)]
    pub binlog_pos: Option<u64>,
    #[serde(default)]
    pub binlog_gtid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BlockAllowList {
    #[serde(default)]
    pub do_dbs: Vec<String>,
    #[serde(default)]
    pub do_tables: Vec<TableRule>,
    #[serde(default)]
    pub ignore_dbs: Vec<String>,
    #[serde(default)]
    pub ignore_tables: Vec<TableRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TableRule {
    pub db_name: String,
    pub tbl_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DumperConfig {
    /// Chunks read and written at the same time.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Rows per chunk: tables with a usable key are split into key ranges of about this many
    /// rows, each copied (and resumed) on its own.
    #[serde(default = "default_chunk_rows")]
    pub rows: u64,
    /// Create tables without their non-unique secondary indexes and build those after the
    /// data.
    #[serde(default = "yes")]
    pub defer_indexes: bool,
    /// TiDB DM's `where`: copy only the rows of every table that satisfy this SQL condition
    /// (the binlog is replicated whole, as in DM).
    #[serde(default, rename = "where")]
    pub where_clause: Option<String>,
    /// TiDB DM's dumpling options: `--where` and `--consistency` are taken (when the fields
    /// are not set), the sizing options are accepted without effect, others refused.
    #[serde(default)]
    pub extra_args: Option<String>,
    /// How each chunk's snapshot is tied to a binlog position (TiDB DM's / dumpling's
    /// `--consistency`; see `Consistency`).
    #[serde(default)]
    pub consistency: Consistency,
    /// Rows copied per second at most (0: no limit); `dm ctl throttle` changes it at
    /// runtime.
    #[serde(default)]
    pub max_rows_per_second: u64,
    /// Hold while a global status variable of the source is above a limit:
    /// `Threads_running=50[,Name=limit...]` (gh-ost's `--max-load`).
    #[serde(default)]
    pub max_load: Option<String>,
    /// The same check on the target.
    #[serde(default)]
    pub max_target_load: Option<String>,
}

/// How a chunk's snapshot is tied to a binlog position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// MariaDB: the snapshot's own position, no lock. MySQL: as `none`, no lock.
    #[default]
    Auto,
    /// MySQL: a short `FLUSH TABLES WITH READ LOCK` per chunk while its snapshot starts, for
    /// its exact position (refused by RDS and Aurora). MariaDB: as `auto`.
    Flush,
    /// As `flush` (dumpling's table locks are not needed: dm locks no tables).
    Lock,
    /// As `auto`.
    Snapshot,
    /// No lock on either flavor: each snapshot is bracketed by the binlog position read just
    /// before it; the binlog from the oldest bracket on is replayed in safe mode until past
    /// the position read after the last chunk (docs/architecture.md).
    None,
}

impl Consistency {
    /// Whether chunk snapshots are bracketed (no exact position) with this flavor.
    pub fn bracketed(self, flavor: super::Flavor) -> bool {
        matches!(
            (self, flavor),
            (Consistency::None, _)
                | (
                    Consistency::Auto | Consistency::Snapshot,
                    super::Flavor::Mysql
                )
        )
    }
}

/// `loaders.<name>`: where a dump to import is (`task-mode: load` and `load&sync`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LoaderConfig {
    /// A directory written by mydumper or dumpling (`metadata`, `<db>-schema-create.sql`,
    /// `<db>.<table>-schema.sql`, `<db>.<table>[.<n>].sql`), on the worker's machine
    /// (TiDB DM's default: `./dumped_data`).
    #[serde(default = "default_dump_dir")]
    pub dir: std::path::PathBuf,
}

fn default_dump_dir() -> std::path::PathBuf {
    "./dumped_data".into()
}

impl DumperConfig {
    /// The condition rows must satisfy to be copied, checked when the file was read.
    pub fn row_condition(&self) -> Option<String> {
        if let Some(w) = &self.where_clause {
            return super::dump_args::row_condition(w).ok();
        }
        let args = self.extra_args.as_deref()?;
        super::dump_args::extra_args(args).ok()?.0
    }

    /// `consistency`, or extra-args' `--consistency` when the field is not set.
    pub fn consistency(&self) -> Consistency {
        if self.consistency != Consistency::Auto {
            return self.consistency;
        }
        self.extra_args
            .as_deref()
            .and_then(super::dump_args::consistency)
            .unwrap_or(Consistency::Auto)
    }
}

fn default_chunk_rows() -> u64 {
    50_000
}

fn default_threads() -> usize {
    6
}

impl Default for DumperConfig {
    fn default() -> Self {
        DumperConfig {
            threads: default_threads(),
            rows: default_chunk_rows(),
            defer_indexes: true,
            where_clause: None,
            extra_args: None,
            consistency: Consistency::Auto,
            max_rows_per_second: 0,
            max_load: None,
            max_target_load: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SyncerConfig {
    /// Apply workers (target connections) running in parallel.
    #[serde(default = "default_worker_count")]
    pub worker_count: usize,
    /// Row changes per target transaction of one apply worker.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Merge changes of one row inside a batch (tables whose only unique key is a
    /// non-text primary key).
    #[serde(default = "yes")]
    pub compact: bool,
    /// Seconds between checkpoint saves while changes flow.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_flush_interval: u64,
    /// TiDB DM's `safe-mode`: apply every change in safe mode (inserts as REPLACE, updates as
    /// delete + replace), not only after a restart.
    #[serde(default)]
    pub safe_mode: bool,
    /// TiDB DM's `safe-mode-duration` (Go's form: `60s`, `1m30s`): safe mode also lasts this
    /// long after the incremental phase starts or resumes, besides the window dm records.
    #[serde(default)]
    pub safe_mode_duration: Option<String>,
    /// Row changes applied per second at most (0: no limit); `dm ctl throttle` changes it
    /// at runtime.
    #[serde(default)]
    pub max_rows_per_second: u64,
    /// Hold while a global status variable of the source is above a limit:
    /// `Threads_running=50[,Name=limit...]` (gh-ost's `--max-load`).
    #[serde(default)]
    pub max_load: Option<String>,
    /// The same check on the target.
    #[serde(default)]
    pub max_target_load: Option<String>,
}

impl SyncerConfig {
    /// `safe-mode-duration` as a duration (none, or zero: only the recorded window).
    pub fn safe_mode_for(&self) -> Option<std::time::Duration> {
        self.safe_mode_duration
            .as_deref()
            .and_then(|d| go_duration(d).ok())
            .filter(|d| !d.is_zero())
    }
}

const LOAD_HINT: &str = "write it as gh-ost's --max-load: `Threads_running=50`";

/// The first of a section's `max-load` and `max-target-load` that does not parse: its
/// field and what is wrong.
fn bad_load_limit(
    max_load: &Option<String>,
    max_target_load: &Option<String>,
) -> Option<(&'static str, String)> {
    [("max-load", max_load), ("max-target-load", max_target_load)]
        .into_iter()
        .find_map(|(field, value)| {
            let e = crate::throttle::parse_max_load(value.as_deref()?).err()?;
            Some((field, e))
        })
}

/// A duration as Go writes it (TiDB DM's files): numbers with units `h`, `m`, `s`, `ms`, `us`
/// (`µs`), `ns`, one after the other (`1h30m`, `1.5s`); `0` and empty are zero; at most a
/// year.
pub fn go_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let t = text.trim();
    if t == "0" || t.is_empty() {
        return Ok(std::time::Duration::ZERO);
    }
    let bad = || format!("`{text}` is not a duration such as 60s, 1m30s or 500ms");
    let mut secs = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        secs += value * scale;
        rest = &rest[unit_len..];
    }
    // At most a year: beyond, a deadline would overflow.
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| d.as_secs() <= 366 * 86_400)
        .ok_or_else(bad)
}

fn default_worker_count() -> usize {
    4
}
fn default_batch() -> usize {
    1000
}
fn yes() -> bool {
    true
}
fn default_checkpoint_interval() -> u64 {
    10
}

impl Default for SyncerConfig {
    fn default() -> Self {
        SyncerConfig {
            worker_count: default_worker_count(),
            batch: default_batch(),
            compact: true,
            checkpoint_flush_interval: default_checkpoint_interval(),
            safe_mode: false,
            safe_mode_duration: None,
            max_rows_per_second: 0,
            max_load: None,
            max_target_load: None,
        }
    }
}

impl TaskConfig {
    /// Filter rules naming an event TiDB DM does not know are left out, as DM leaves them out
    /// (with a warning, in `compat_warnings`).
    fn leave_out_dm_invalid_filters(&mut self, file: &str) {
        let mut gone = BTreeSet::new();
        for (name, rule) in &self.filters {
            if let Some(ev) = rule.unknown_event() {
                self.left_out
                    .push(FilterRule::left_out(&format!("{file}: filters.{name}"), ev));
                gone.insert(name.clone());
            }
        }
        self.filters.retain(|n, _| !gone.contains(n));
        for inst in &mut self.mysql_instances {
            inst.filter_rules.retain(|n| !gone.contains(n));
        }
    }

    /// What dm did with TiDB DM's fields of the file (renamed, left out, and why).
    /// `self` having been read from `text`: the fields of TiDB DM's with no effect, and the
    /// settings of this file that have none here.
    pub fn compat_warnings(&self, file: &str, text: &str) -> Vec<String> {
        let mut warnings = super::compat::task(file, text).warnings;
        warnings.extend(self.left_out.iter().cloned());
        if !self.loaders.is_empty()
            && !self.task_mode.has_load()
            && self.task_mode != TaskMode::Dump
        {
            warnings.push(format!(
                "{file}: loaders has no effect in task-mode {}: dm's full phase streams rows source to target, without dump files",
                self.task_mode.name()
            ));
        }
        for k in self.target_database.session.keys() {
            if k.eq_ignore_ascii_case("foreign_key_checks") {
                warnings.push(format!(
                    "{file}: target-database.session.foreign_key_checks: left out: dm applies with foreign key checks off in every session (with them on, the copy's and safe mode's REPLACE of a parent row would delete its children by cascade); cascading foreign keys in scope are listed by check-task, since the rows a cascade changes are not in the source's binlog"
                ));
            } else if super::is_dm_controlled(k) {
                warnings.push(format!(
                    "{file}: target-database.session.{k}: left out: dm sets it itself (UTC for TIMESTAMPs, a strict sql_mode, utf8mb4) and replays every statement in the session it ran in on the source"
                ));
            }
            if super::is_tidb_variable(k) {
                warnings.push(format!(
                    "{file}: target-database.session.{k}: a TiDB variable, set only when the target is TiDB (MySQL and MariaDB have none such)"
                ));
            }
        }
        for (name, d) in &self.mydumpers {
            let notes = d
                .extra_args
                .as_deref()
                .and_then(|a| super::dump_args::extra_args(a).ok())
                .map(|(_, notes)| notes)
                .unwrap_or_default();
            warnings.extend(notes.into_iter().map(|n| format!("mydumpers.{name}.{n}")));
        }
        warnings
    }

    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let compat = super::compat::task(file, text);
        if let Some((line, message)) = compat.refused {
            return Err(crate::Error::Config {
                file: file.to_string(),
                line,
                column: 1,
                message,
                hint: "remove the field (docs/config.md, \"TiDB DM's files\")".into(),
            });
        }
        let text = compat.text.as_str();
        let mut cfg: TaskConfig = parse_yaml(file, text)?;
        cfg.leave_out_dm_invalid_filters(file);
        super::check_password(
            file,
            text,
            "target-database.password",
            &cfg.target_database.password,
        )?;
        super::check_connection(file, text, "target-database", &cfg.target_database)?;
        let fail = |key: &str, message: String, hint: &str| {
            Err(semantic_error(file, text, key, message, hint))
        };
        if cfg.name.trim().is_empty() {
            return fail("name", "name: must not be empty".into(), "name the task");
        }
        if !cfg
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return fail(
                "name",
                format!(
                    "name: `{}` may only hold letters, digits, `_` and `-`",
                    cfg.name
                ),
                "the name is used in table names of the meta schema",
            );
        }
        if let Some(p) = &cfg.shard_ddl_policy {
            if !cfg.plugins.contains_key(p) {
                return fail(
                    "shard-ddl-policy",
                    format!("shard-ddl-policy: `{p}` is not defined in plugins"),
                    "define it under the top-level `plugins:` or fix the name",
                );
            }
            if cfg.shard_mode.is_none() {
                return fail(
                    "shard-ddl-policy",
                    "shard-ddl-policy needs a shard-mode (pessimistic or optimistic)".into(),
                    "add `shard-mode: optimistic` (shards wait at the DDL) or `pessimistic` (shards are held)",
                );
            }
        }
        if let Some(bad) = cfg
            .ignore_checking_items
            .iter()
            .find(|i| !super::checking_items().contains(&i.as_str()))
        {
            return fail(
                "ignore-checking-items",
                format!("ignore-checking-items: `{bad}` is not a checking item"),
                &format!("use {}", super::checking_items().join(", ")),
            );
        }
        for (key, rules) in [
            ("shadow-table-rules", &cfg.shadow_table_rules),
            ("trash-table-rules", &cfg.trash_table_rules),
        ] {
            if let Some(message) = rules
                .iter()
                .find_map(|r| super::online_ddl::check_rule(r).err())
            {
                return fail(
                    key,
                    format!("{key}: {message}"),
                    "write a regular expression (Rust regex syntax) whose first group captures the real table's name, as `^_(.+)_(?:new|gho)$`",
                );
            }
        }
        if cfg.mysql_instances.is_empty() {
            return fail(
                "mysql-instances",
                "mysql-instances: at least one source is needed".into(),
                "add `- source-id: <id>` entries",
            );
        }
        let mut seen = BTreeSet::new();
        for inst in &cfg.mysql_instances {
            if !seen.insert(&inst.source_id) {
                return fail(
                    "source-id",
                    format!(
                        "mysql-instances: source-id `{}` appears twice",
                        inst.source_id
                    ),
                    "list each source once",
                );
            }
            if (cfg.task_mode.has_load() || cfg.task_mode == TaskMode::Dump)
                && (!inst.expression_filters.is_empty() || !inst.plugins.is_empty())
            {
                return fail(
                    "task-mode",
                    format!(
                        "mysql-instances `{}`: expression filters and row filter plugins do not apply to the rows of a dump (task-mode {})",
                        inst.source_id,
                        cfg.task_mode.name()
                    ),
                    "filter the dump when it is made (mydumper --where), or use task-mode all, whose full phase applies them",
                );
            }
            if cfg.task_mode.has_load() && inst.loader_config_name.is_none() {
                return fail(
                    "task-mode",
                    format!(
                        "task-mode {}: mysql-instances `{}` names no loader-config-name",
                        cfg.task_mode.name(),
                        inst.source_id
                    ),
                    "name a `loaders` entry whose `dir` holds the source's dump (mydumper's or dumpling's)",
                );
            }
            // (field, section it names entries of, names used, names defined)
            let references: [(&str, &str, Vec<&String>, Vec<&String>); 8] = [
                (
                    "loader-config-name",
                    "loaders",
                    inst.loader_config_name.iter().collect(),
                    cfg.loaders.keys().collect(),
                ),
                (
                    "route-rules",
                    "routes",
                    inst.route_rules.iter().collect(),
                    cfg.routes.keys().collect(),
                ),
                (
                    "block-allow-list",
                    "block-allow-list",
                    inst.block_allow_list.iter().collect(),
                    cfg.block_allow_list.keys().collect(),
                ),
                (
                    "mydumper-config-name",
                    "mydumpers",
                    inst.mydumper_config_name.iter().collect(),
                    cfg.mydumpers.keys().collect(),
                ),
                (
                    "syncer-config-name",
                    "syncers",
                    inst.syncer_config_name.iter().collect(),
                    cfg.syncers.keys().collect(),
                ),
                (
                    "filter-rules",
                    "filters",
                    inst.filter_rules.iter().collect(),
                    cfg.filters.keys().collect(),
                ),
                (
                    "expression-filters",
                    "expression-filter",
                    inst.expression_filters.iter().collect(),
                    cfg.expression_filter.keys().collect(),
                ),
                (
                    "plugins",
                    "plugins",
                    inst.plugins.iter().collect(),
                    cfg.plugins.keys().collect(),
                ),
            ];
            for (key, section, used, defined) in references {
                if let Some(n) = used.into_iter().find(|n| !defined.contains(n)) {
                    return fail(
                        key,
                        format!(
                            "mysql-instances[{}].{key}: `{n}` is not defined in {section}",
                            inst.source_id
                        ),
                        &format!("define it under the top-level `{section}:` or fix the name"),
                    );
                }
            }
            if let Some(meta) = &inst.meta {
                if meta.binlog_name.is_none() && meta.binlog_gtid.is_none() {
                    return fail(
                        "meta",
                        format!(
                            "mysql-instances[{}].meta: needs binlog-name (and binlog-pos) or binlog-gtid",
                            inst.source_id
                        ),
                        "give the position the incremental phase starts from",
                    );
                }
                // The name reaches the file system (a relay log's files, binlog-dir).
                if let Some(name) = meta.binlog_name.as_deref().filter(|n| !is_binlog_name(n)) {
                    return fail(
                        "binlog-name",
                        format!(
                            "mysql-instances[{}].meta.binlog-name: `{name}` is not a binlog file name",
                            inst.source_id
                        ),
                        "give a file name of the source's binlog as SHOW MASTER STATUS prints it, such as `mysql-bin.000001`",
                    );
                }
            }
        }
        if cfg.task_mode == TaskMode::Dump {
            let mut dirs = BTreeSet::new();
            for inst in &cfg.mysql_instances {
                let dir = cfg.dump_dir_of(&inst.source_id);
                if !dirs.insert(dir.clone()) {
                    return fail(
                        "task-mode",
                        format!(
                            "task-mode dump: source `{}` would write its dump into {}, as another source does",
                            inst.source_id,
                            dir.display()
                        ),
                        "give each source its own `loaders` entry (loader-config-name) with its own dir",
                    );
                }
            }
        }
        for (name, rule) in &cfg.filters {
            if let Err((key, message, hint)) = rule.check(&format!("filters.{name}")) {
                return fail(key, message, &hint);
            }
        }
        if cfg.foreign_key_checks && cfg.shard_mode.is_some() {
            return fail(
                "foreign-key-checks",
                "foreign-key-checks with shard-mode: shards merged into one table cannot keep the foreign keys of each shard's own tables".into(),
                "migrate the tables linked by foreign keys in a task without shard-mode, or leave foreign-key-checks off",
            );
        }
        for (name, sy) in &cfg.syncers {
            if let Some(Err(e)) = sy.safe_mode_duration.as_deref().map(go_duration) {
                return fail(
                    "safe-mode-duration",
                    format!("syncers.{name}.safe-mode-duration: {e}"),
                    "write it as TiDB DM does: 60s, 1m30s, 0s",
                );
            }
            if cfg.foreign_key_checks && (sy.safe_mode || sy.safe_mode_for().is_some()) {
                let field = if sy.safe_mode {
                    "safe-mode"
                } else {
                    "safe-mode-duration"
                };
                return fail(
                    field,
                    format!("syncers.{name}.{field}: safe mode writes changes as REPLACE, which with foreign-key-checks: true deletes the children of a parent row by cascade"),
                    "leave safe mode off: with foreign-key-checks, tables linked by foreign keys are applied exactly once without it",
                );
            }
            if let Some((field, e)) = bad_load_limit(&sy.max_load, &sy.max_target_load) {
                return fail(field, format!("syncers.{name}.{field}: {e}"), LOAD_HINT);
            }
        }
        for (name, d) in &cfg.mydumpers {
            if let Some((field, e)) = bad_load_limit(&d.max_load, &d.max_target_load) {
                return fail(field, format!("mydumpers.{name}.{field}: {e}"), LOAD_HINT);
            }
            if let Some(w) = &d.where_clause {
                if let Err(e) = super::dump_args::row_condition(w) {
                    return fail("where", format!("mydumpers.{name}.where: {e}"), "write one SQL condition on the tables' columns, e.g. `where: \"id > 1000\"`");
                }
            }
            if let Some(a) = &d.extra_args {
                if let Err(e) = super::dump_args::extra_args(a) {
                    return fail(
                        "extra-args",
                        format!("mydumpers.{name}.{e}"),
                        "see docs/from-tidb-dm.md",
                    );
                }
            }
        }
        for (name, r) in &cfg.routes {
            let extracts = [&r.extract_table, &r.extract_schema, &r.extract_source];
            for x in extracts.into_iter().flatten() {
                if let Err(e) = regex::Regex::new(&x.regexp) {
                    return fail(
                        &x.regexp,
                        format!("routes.{name}: `{}`: {e}", x.regexp),
                        "write a regular expression whose groups capture the value",
                    );
                }
            }
        }
        for (name, ef) in &cfg.expression_filter {
            for (key, text) in [
                ("insert-value-expr", &ef.insert_value_expr),
                ("update-old-value-expr", &ef.update_old_value_expr),
                ("update-new-value-expr", &ef.update_new_value_expr),
                ("delete-value-expr", &ef.delete_value_expr),
            ] {
                if let Some(Err(e)) = text.as_deref().map(crate::expr::RowExpr::parse) {
                    return fail(
                        key,
                        format!("expression-filter.{name}.{key}: {e}"),
                        "write a SQL boolean expression over the table's columns, e.g. `c % 2 = 0`",
                    );
                }
            }
        }
        let counts = cfg
            .mydumpers
            .iter()
            .flat_map(|(n, d)| {
                [
                    ("mydumpers", n, "threads", d.threads as u64),
                    ("mydumpers", n, "rows", d.rows),
                ]
            })
            .chain(cfg.syncers.iter().flat_map(|(n, s)| {
                [
                    ("syncers", n, "worker-count", s.worker_count as u64),
                    ("syncers", n, "batch", s.batch as u64),
                ]
            }));
        for (section, name, key, value) in counts {
            if value == 0 {
                return fail(
                    key,
                    format!("{section}.{name}.{key}: must be at least 1"),
                    "leave it out for the default",
                );
            }
        }
        // Every name pattern of the file, with the section it is in.
        let patterns = cfg
            .block_allow_list
            .iter()
            .flat_map(|(n, ba)| {
                let tables = ba.do_tables.iter().chain(&ba.ignore_tables);
                ba.do_dbs
                    .iter()
                    .chain(&ba.ignore_dbs)
                    .chain(tables.flat_map(|t| [&t.db_name, &t.tbl_name]))
                    .map(move |p| (format!("block-allow-list.{n}"), p))
            })
            .chain(cfg.filters.iter().flat_map(|(n, r)| {
                std::iter::once(&r.schema_pattern)
                    .chain(&r.table_pattern)
                    .map(move |p| (format!("filters.{n}"), p))
            }))
            .chain(cfg.routes.iter().flat_map(|(n, r)| {
                std::iter::once(&r.schema_pattern)
                    .chain(&r.table_pattern)
                    .map(move |p| (format!("routes.{n}"), p))
            }));
        for (place, p) in patterns {
            if let Err(e) = crate::config::Pattern::new(p) {
                return fail(
                    p,
                    format!("{place}: pattern `{p}`: {e}"),
                    "use `*`/`?` wildcards, or `~` followed by a regular expression",
                );
            }
        }
        Ok(cfg)
    }

    pub fn instance(&self, source_id: &str) -> Option<&MysqlInstance> {
        self.mysql_instances
            .iter()
            .find(|i| i.source_id == source_id)
    }

    /// The table selection of one source (everything when none is named).
    pub fn block_allow_list_of(&self, source_id: &str) -> BlockAllowList {
        self.instance(source_id)
            .and_then(|i| i.block_allow_list.as_ref())
            .and_then(|n| self.block_allow_list.get(n))
            .cloned()
            .unwrap_or_default()
    }

    /// The dump directory of a source's instance: its `loaders` entry's dir (`task-mode:
    /// load`, `load&sync`, `dump`).
    pub fn loader_dir_of(&self, source_id: &str) -> Option<std::path::PathBuf> {
        self.instance(source_id)
            .and_then(|i| i.loader_config_name.as_ref())
            .and_then(|n| self.loaders.get(n))
            .map(|l| l.dir.clone())
    }

    /// Where `task-mode: dump` writes a source's dump: its `loaders` dir, else TiDB DM's
    /// default `./dumped_data`.
    pub fn dump_dir_of(&self, source_id: &str) -> std::path::PathBuf {
        self.loader_dir_of(source_id)
            .unwrap_or_else(default_dump_dir)
    }

    pub fn dumper_of(&self, source_id: &str) -> DumperConfig {
        self.instance(source_id)
            .and_then(|i| i.mydumper_config_name.as_ref())
            .and_then(|n| self.mydumpers.get(n))
            .cloned()
            .unwrap_or_default()
    }

    /// The source a request names, or the task's only source when it names none.
    pub fn source_named(&self, which: Option<&str>) -> crate::Result<String> {
        match (which, self.mysql_instances.as_slice()) {
            (Some(s), _) if self.instance(s).is_some() => Ok(s.to_string()),
            (None, [only]) => Ok(only.source_id.clone()),
            _ => Err(crate::Error::Invalid(format!(
                "name one of task `{}`'s sources with --source",
                self.name
            ))),
        }
    }

    /// The plugins of one source, in order: (name, spec).
    pub fn plugins_of(&self, source_id: &str) -> Vec<(String, super::PluginSpec)> {
        self.instance(source_id)
            .map(|i| {
                i.plugins
                    .iter()
                    .filter_map(|n| self.plugins.get(n).map(|p| (n.clone(), p.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn syncer_of(&self, source_id: &str) -> SyncerConfig {
        self.instance(source_id)
            .and_then(|i| i.syncer_config_name.as_ref())
            .and_then(|n| self.syncers.get(n))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_durations_as_tidb_dm_writes_them() {
        assert_eq!(go_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(go_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(go_duration("").unwrap(), Duration::ZERO);
        for bad in ["60", "1 minute", "5x", "s", "99999999999999999999h"] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
        let zero = SyncerConfig {
            safe_mode_duration: Some("0s".into()),
            ..Default::default()
        };
        assert_eq!(zero.safe_mode_for(), None);
    }
}
