//! `dm ctl`: the command line for people. Talks only to the master's HTTP API; prints tables by
//! default and JSON with `--output json`.

use crate::ctl_config::task_name;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ColumnConstraint, ContentArrangement, Table};
use dm_core::config::{load_file, StandaloneConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CtlArgs {
    /// Address of the master's API (default: master-addr of ./dm.yaml, else 127.0.0.1:8261);
    /// several masters of a cluster separated by commas: the first that answers is used.
    #[arg(long, env = "DM_MASTER_ADDR", global = true)]
    master_addr: Option<String>,
    /// PEM of the CA that signed the master's API certificate: talk HTTPS (default: `tls.ca`
    /// or `tls.cert` of ./dm.yaml when it has `tls`).
    #[arg(long, env = "DM_TLS_CA", global = true)]
    tls_ca: Option<PathBuf>,
    /// PEM client certificate and key, for a master that requires one (`tls.cert-allowed-cn`).
    #[arg(long, env = "DM_TLS_CERT", global = true, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "DM_TLS_KEY", global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Token for a master whose API asks for one (`auth.tokens`).
    #[arg(long, env = "DM_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum CtlCommand {
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
    /// is DM_SECRET_KEY (64 hex digits), the same for every dm process.
    Encrypt {
        plaintext: String,
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
    /// Move a source to a free worker.
    TransferSource { source_id: String, worker: String },
    /// `evict`: the leader steps down and stays a follower; `cancel-evict` undoes that.
    OperateLeader {
        #[arg(value_parser = ["evict", "cancel-evict"])]
        op: String,
    },
}

#[derive(Subcommand)]
enum BinlogOp {
    /// Skip the transaction each paused subtask of the task stopped at, and resume; with
    /// -b, the transaction ending at that position, when the task reaches it.
    Skip {
        name: String,
        #[command(flatten)]
        at: BinlogAt,
    },
    /// Replace that transaction by statements run on the target instead, and resume.
    Replace {
        name: String,
        #[arg(required = true)]
        sql: Vec<String>,
        #[command(flatten)]
        at: BinlogAt,
    },
    /// Run statements on the target before that transaction (e.g. what a failing DDL needs),
    /// then apply it, and resume.
    Inject {
        name: String,
        #[arg(required = true)]
        sql: Vec<String>,
        #[command(flatten)]
        at: BinlogAt,
    },
    /// The skips, replacements and injections recorded for a task.
    List { name: String },
    /// Forget the skip, replacement or injection recorded at -b file:pos.
    Revert {
        name: String,
        #[command(flatten)]
        at: BinlogAt,
    },
}

#[derive(Args)]
struct BinlogAt {
    /// End of the transaction (`file:pos`) instead of the one a subtask paused at (for
    /// revert: the position of the operation).
    #[arg(short = 'b', long = "binlog-pos")]
    position: Option<String>,
    /// The source of that position (needed when the task has several).
    #[arg(short, long, requires = "position")]
    source: Option<String>,
}

impl BinlogAt {
    fn body(&self) -> Option<Value> {
        self.position
            .as_ref()
            .map(|p| json!({ "position": p, "source": self.source }))
    }
}

#[derive(Subcommand)]
enum SchemaOp {
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
enum TokenOp {
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
enum PluginOp {
    /// Load a plugin, report its ABI and hooks, run it on sample rows.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum LockOp {
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
enum ValidationOp {
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
struct RelayArgs {
    source_id: String,
}

#[derive(Subcommand)]
enum SourceOp {
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
enum ConfigOp {
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

pub struct Client {
    /// One master per entry; the first that answers is used.
    bases: Vec<String>,
    http: reqwest::Client,
}

impl Client {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut failures = vec![];
        let mut answer = None;
        for base in &self.bases {
            let mut req = self.http.request(method.clone(), format!("{base}{path}"));
            // Every change carries a JSON body: the API refuses others (see api_auth).
            match &body {
                Some(b) => req = req.json(b),
                None if method != reqwest::Method::GET => req = req.json(&json!({})),
                None => {}
            }
            match req.send().await {
                Ok(r) => {
                    answer = Some(r);
                    break;
                }
                Err(e) => {
                    // reqwest's message hides the cause (refused, certificate, ...).
                    let mut text = e.to_string();
                    let mut cause = std::error::Error::source(&e);
                    while let Some(c) = cause {
                        text = format!("{text}: {c}");
                        cause = c.source();
                    }
                    failures.push(format!("{base}: {text}"))
                }
            }
        }
        let resp = answer.ok_or_else(|| {
            let all = failures.join("; ");
            let hint = if all.contains("CertificateRequired") {
                "the master asks for a client certificate (tls.cert-allowed-cn): pass --tls-cert and --tls-key (DM_TLS_CERT, DM_TLS_KEY)"
            } else {
                "start one with `dm standalone -c dm.yaml` or `dm master -c master.yaml`, or pass --master-addr; a master with `tls` needs https and --tls-ca <ca.pem>"
            };
            anyhow!("cannot reach any master ({all})\n  hint: {hint}")
        })?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        match (value.get("code"), value.get("message")) {
            (Some(c), Some(m)) => {
                let hint = value.get("hint").and_then(Value::as_str).unwrap_or("");
                bail!(
                    "[{}] {}{}",
                    c.as_str().unwrap_or(""),
                    m.as_str().unwrap_or(""),
                    if hint.is_empty() {
                        String::new()
                    } else {
                        format!("\n  hint: {hint}")
                    }
                )
            }
            _ => bail!("the master answered {status}: {value}"),
        }
    }
}

/// The master's address and the CA of its API certificate: from the flags, else ./dm.yaml.
fn master_addr(arg: Option<String>, tls_ca: Option<PathBuf>) -> (String, Option<PathBuf>) {
    let local = Path::new("dm.yaml");
    let cfg = local
        .exists()
        .then(|| load_file::<StandaloneConfig>(local).ok())
        .flatten();
    let ca = tls_ca.or_else(|| {
        cfg.as_ref()
            .and_then(|c| dm_core::config::api_ca(c.tls.as_ref()).map(Path::to_path_buf))
    });
    let addr = arg
        .or(cfg.map(|c| c.master_addr))
        .unwrap_or_else(|| StandaloneConfig::default().master_addr);
    (addr, ca)
}

pub(crate) fn file_body(path: &Path, remove_meta: bool) -> Result<Value> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Absolute: a master on this machine watches the file for edits.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let path = path.as_path();
    Ok(json!({
        "file": path.display().to_string(),
        "content": content,
        "remove_meta": remove_meta,
        "plugins": plugin_uploads(path, &content)?,
    }))
}

/// The plugin modules a task file names (paths relative to the file), base64, so that the
/// master and workers need not share this machine's disk. A file that does not parse is sent
/// as it is: the master reports its mistakes.
fn plugin_uploads(path: &Path, content: &str) -> Result<serde_json::Map<String, Value>> {
    let Ok(task) = dm_core::config::TaskConfig::parse(&path.display().to_string(), content) else {
        return Ok(serde_json::Map::new());
    };
    let modules =
        dm_core::meta::plugins::read_task_plugins(path, &task).map_err(|e| anyhow!("{e}"))?;
    Ok(modules
        .into_iter()
        .map(|(name, b64)| (name, Value::String(b64)))
        .collect())
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(x)) => x.clone(),
        Some(x) => x.to_string(),
    }
}

pub async fn run(args: CtlArgs) -> Result<()> {
    if let CtlCommand::Encrypt {
        plaintext,
        key_file,
    } = &args.command
    {
        let local = Path::new("dm.yaml");
        let key_file = key_file.clone().or_else(|| {
            let cfg = load_file::<StandaloneConfig>(local).ok()?;
            Some(
                cfg.secret_key_path
                    .unwrap_or_else(|| cfg.data_dir.join("secret.key")),
            )
        });
        dm_core::secret::init(key_file.as_deref(), false).map_err(|e| anyhow!(e))?;
        println!(
            "{}",
            dm_core::secret::encrypt(plaintext).map_err(|e| anyhow!(e))?
        );
        return Ok(());
    }
    if let CtlCommand::Token {
        op: TokenOp::New { name, role },
    } = &args.command
    {
        if !matches!(role.as_str(), "admin" | "viewer") {
            bail!("--role {role}: use admin or viewer");
        }
        let (token, sha256) = dm_core::api_auth::new_token();
        let entry = json!({"name": name, "role": role, "sha256": sha256});
        match args.output {
            Output::Json => println!("{}", json!({"token": token, "entry": entry})),
            Output::Table => println!(
                "token: {token}\n  give it to `dm ctl --token` or DM_TOKEN (and a worker's token-file); it is not stored anywhere\n\nadd to every master's config (dm.yaml / master.yaml):\nauth:\n  tokens:\n    - {{name: {name}, role: {role}, sha256: {sha256}}}"
            ),
        }
        return Ok(());
    }
    if let CtlCommand::Plugin {
        op: PluginOp::Check { file },
    } = &args.command
    {
        let v = crate::plugin_check::check(file)?;
        print(&v, args.output, crate::plugin_check::render);
        return Ok(());
    }
    let (addrs, tls_ca) = master_addr(args.master_addr, args.tls_ca);
    let api = dm_core::api_tls::ApiClient::new(
        tls_ca.as_deref(),
        std::time::Duration::from_secs(24 * 3600),
        args.token.as_deref(),
        args.tls_cert.as_deref().zip(args.tls_key.as_deref()),
    )?;
    let bases = addrs
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| api.base(a))
        .collect();
    let client = Client {
        bases,
        http: api.http,
    };
    use reqwest::Method;
    let (value, render): (Value, fn(&Value) -> String) = match args.command {
        CtlCommand::OperateSource { op } => match op {
            SourceOp::Create {
                print_sample_config: true,
                ..
            } => {
                print!("{}", include_str!("../examples/source.yaml"));
                return Ok(());
            }
            SourceOp::Create { files, .. } => {
                let mut created = vec![];
                for file in files {
                    created.push(
                        client
                            .call(
                                Method::POST,
                                "/api/v1/sources",
                                Some(file_body(&file, false)?),
                            )
                            .await
                            .with_context(|| {
                                format!("creating the source of {}", file.display())
                            })?,
                    );
                }
                (Value::Array(created), render_sources)
            }
            SourceOp::Update { file } => {
                let body = file_body(&file, false)?;
                let text = body["content"].as_str().unwrap_or_default();
                let doc: serde_json::Value = serde_yaml::from_str(text).unwrap_or_default();
                let Some(id) = doc["source-id"].as_str().map(str::to_string) else {
                    bail!(
                        "{}: a source file names its source (`source-id:`)",
                        file.display()
                    );
                };
                (
                    client
                        .call(
                            Method::POST,
                            &format!("/api/v1/sources/{id}/update"),
                            Some(body),
                        )
                        .await?,
                    render_sources,
                )
            }
            SourceOp::Show { source } => {
                let mut v = client.call(Method::GET, "/api/v1/sources", None).await?;
                if let (Value::Array(all), false) = (&mut v, source.is_empty()) {
                    all.retain(|s| {
                        s["source_id"]
                            .as_str()
                            .is_some_and(|id| source.iter().any(|w| w == id))
                    });
                }
                (v, render_sources)
            }
            SourceOp::Stop { source_id } => (
                client
                    .call(
                        Method::DELETE,
                        &format!("/api/v1/sources/{source_id}"),
                        None,
                    )
                    .await?,
                render_plain,
            ),
        },
        CtlCommand::StartTask {
            file,
            remove_meta,
            skip_precheck,
            start_time,
        } => {
            let mut body = file_body(&file, remove_meta)?;
            body["skip_precheck"] = json!(skip_precheck);
            body["start_time"] = json!(start_time);
            (
                client
                    .call(Method::POST, "/api/v1/tasks", Some(body))
                    .await?,
                render_tasks,
            )
        }
        CtlCommand::UpdateTask { file } => {
            let body = file_body(&file, false)?;
            let content = body["content"].as_str().unwrap_or_default();
            let task = dm_core::config::TaskConfig::parse(&file.display().to_string(), content)
                .map_err(|e| anyhow!("[{}] {e}\n  hint: {}", e.code(), e.hint()))?;
            (
                client
                    .call(
                        Method::POST,
                        &format!("/api/v1/tasks/{}/update", task.name),
                        Some(body),
                    )
                    .await?,
                render_tasks,
            )
        }
        CtlCommand::StopTask { name, source } => (
            client
                .call(
                    Method::DELETE,
                    &format!(
                        "/api/v1/tasks/{}?sources={}",
                        task_name(&name)?,
                        source.join(",")
                    ),
                    None,
                )
                .await?,
            render_plain,
        ),
        CtlCommand::PauseTask { name, source } => (
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/tasks/{}/pause", task_name(&name)?),
                    Some(json!({ "sources": source })),
                )
                .await?,
            render_tasks,
        ),
        CtlCommand::GetConfig { kind, name, file } => {
            let text = crate::ctl_config::get_config(&client, &kind, &name).await?;
            match file {
                Some(f) => {
                    dm_core::durable::write_atomically(&f, text.as_bytes())
                        .with_context(|| format!("cannot write {}", f.display()))?;
                    println!("{kind} `{name}` written to {}", f.display());
                }
                None => print!("{text}"),
            }
            return Ok(());
        }
        CtlCommand::Config {
            op: ConfigOp::Export { path },
        } => (
            crate::ctl_config::export(&client, &path).await?,
            render_config_files,
        ),
        CtlCommand::Config {
            op: ConfigOp::Import { path },
        } => (
            crate::ctl_config::import(&client, &path).await?,
            render_config_files,
        ),
        CtlCommand::Binlog {
            op: BinlogOp::Revert { name, at },
        } => (
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/tasks/{name}/binlog-revert"),
                    Some(at.body().unwrap_or_else(|| json!({}))),
                )
                .await?,
            render_tasks,
        ),
        CtlCommand::Binlog {
            op: BinlogOp::Skip { name, at },
        } => (
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/tasks/{name}/binlog-skip"),
                    at.body(),
                )
                .await?,
            render_tasks,
        ),
        CtlCommand::Binlog {
            op: BinlogOp::List { name },
        } => (
            client
                .call(Method::GET, &format!("/api/v1/tasks/{name}/binlog"), None)
                .await?,
            render_operators,
        ),
        CtlCommand::Binlog {
            op: BinlogOp::Replace { name, sql, at },
        } => binlog_statements(&client, "replace", &name, sql, at).await?,
        CtlCommand::Binlog {
            op: BinlogOp::Inject { name, sql, at },
        } => binlog_statements(&client, "inject", &name, sql, at).await?,
        CtlCommand::ResumeTask { name, source } => (
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/tasks/{}/resume", task_name(&name)?),
                    Some(json!({ "sources": source })),
                )
                .await?,
            render_tasks,
        ),
        CtlCommand::QueryStatus {
            name: Some(n),
            watch: true,
            ..
        } => return crate::watch::watch(&client, &task_name(&n)?).await,
        CtlCommand::QueryStatus {
            name,
            source,
            wide,
            more,
            ..
        } => {
            let mut v = match name {
                Some(n) => {
                    client
                        .call(
                            Method::GET,
                            &format!("/api/v1/tasks/{}", task_name(&n)?),
                            None,
                        )
                        .await?
                }
                None => client.call(Method::GET, "/api/v1/tasks", None).await?,
            };
            if !source.is_empty() {
                only_sources(&mut v, &source);
            }
            let render: fn(&Value) -> String = if wide || more {
                render_tasks
            } else {
                render_tasks_compact
            };
            (v, render)
        }
        CtlCommand::ListMember {
            master,
            worker,
            leader,
        } => {
            let mut v = client.call(Method::GET, "/api/v1/members", None).await?;
            if let Some(o) = v.as_object_mut() {
                if leader {
                    o.remove("workers");
                    let l = o.get("leader").cloned();
                    if let Some(Value::Array(ms)) = o.get_mut("masters") {
                        ms.retain(|m| m.get("name") == l.as_ref());
                    }
                } else if master {
                    o.remove("workers");
                } else if worker {
                    o.remove("masters");
                }
            }
            (v, render_members)
        }
        CtlCommand::ShardDdlLock { op: None, task } => {
            let path = match task {
                Some(t) => format!("/api/v1/shard-ddl-locks?task={t}"),
                None => "/api/v1/shard-ddl-locks".into(),
            };
            (client.call(Method::GET, &path, None).await?, render_locks)
        }
        CtlCommand::ShardDdlLock {
            op:
                Some(LockOp::Unlock {
                    task,
                    target,
                    exec,
                    skip: _,
                    owner,
                    force_remove,
                }),
            ..
        } => (
            client
                .call(
                    Method::POST,
                    "/api/v1/shard-ddl-locks/unlock",
                    Some(json!({
                        "task": task, "target": target,
                        "action": if exec { "exec" } else { "skip" },
                        "owner": owner, "force_remove": force_remove,
                    })),
                )
                .await?,
            render_plain,
        ),
        CtlCommand::Plugin { .. } | CtlCommand::Encrypt { .. } | CtlCommand::Token { .. } => {
            unreachable!("handled above")
        }
        CtlCommand::BinlogSchema { op } => {
            let (task, body) = match op {
                SchemaOp::List { task, source } => {
                    let q = source.map(|s| format!("?source={s}")).unwrap_or_default();
                    let v = client
                        .call(
                            Method::GET,
                            &format!("/api/v1/tasks/{task}/binlog-schema{q}"),
                            None,
                        )
                        .await?;
                    print(&v, args.output, render_schema);
                    return Ok(());
                }
                SchemaOp::Update {
                    task,
                    table,
                    file,
                    source,
                    from_source,
                    from_target,
                } => match file {
                    Some(file) => {
                        let create = std::fs::read_to_string(&file)
                            .with_context(|| format!("cannot read {}", file.display()))?;
                        (
                            task,
                            json!({ "table": table, "create": create, "source": source }),
                        )
                    }
                    None => {
                        let from = if from_source { "source" } else { "target" };
                        debug_assert!(from_source || from_target);
                        (
                            task,
                            json!({ "table": table, "from": from, "source": source }),
                        )
                    }
                },
                SchemaOp::Delete {
                    task,
                    table,
                    source,
                } => (task, json!({ "table": table, "source": source })),
            };
            (
                client
                    .call(
                        Method::POST,
                        &format!("/api/v1/tasks/{task}/binlog-schema"),
                        Some(body),
                    )
                    .await?,
                render_schema,
            )
        }
        CtlCommand::OfflineMember {
            master: _,
            worker,
            name,
        } => {
            let kind = if worker { "worker" } else { "master" };
            (
                client
                    .call(
                        Method::DELETE,
                        &format!("/api/v1/members/{kind}/{name}"),
                        None,
                    )
                    .await?,
                render_plain,
            )
        }
        CtlCommand::Validation { op } => {
            let (method, path, body) = match op {
                ValidationOp::Start { name, interval } => (
                    Method::POST,
                    format!("/api/v1/tasks/{name}/validation/start"),
                    Some(json!({ "interval_secs": interval })),
                ),
                ValidationOp::Stop { name } => (
                    Method::POST,
                    format!("/api/v1/tasks/{name}/validation/stop"),
                    None,
                ),
                ValidationOp::Status { name } => (
                    Method::GET,
                    format!("/api/v1/tasks/{name}/validation"),
                    None,
                ),
            };
            (client.call(method, &path, body).await?, render_validation)
        }
        CtlCommand::StartRelay(a) => relay_op(&client, &a.source_id, "start", None).await?,
        CtlCommand::StopRelay(a) => relay_op(&client, &a.source_id, "stop", None).await?,
        CtlCommand::PauseRelay(a) => relay_op(&client, &a.source_id, "pause", None).await?,
        CtlCommand::ResumeRelay(a) => relay_op(&client, &a.source_id, "resume", None).await?,
        CtlCommand::PurgeRelay {
            source_id,
            filename,
        } => relay_op(&client, &source_id, "purge", filename).await?,
        CtlCommand::TransferSource { source_id, worker } => (
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/sources/{source_id}/transfer"),
                    Some(json!({ "worker": worker })),
                )
                .await?,
            render_plain,
        ),
        CtlCommand::OperateLeader { op } => (
            client
                .call(Method::POST, &format!("/api/v1/leader/{op}"), None)
                .await?,
            render_plain,
        ),
        CtlCommand::Verify { name, fix } => {
            let v = client
                .call(
                    Method::POST,
                    &format!("/api/v1/tasks/{name}/verify"),
                    Some(json!({ "fix": fix })),
                )
                .await?;
            print(&v, args.output, render_verify);
            let unfixed = as_list(&v).iter().any(|t| {
                t["differences"].as_u64().unwrap_or(0) > 0 && t["fixed"] != Value::Bool(true)
            });
            if unfixed {
                bail!(
                    "the target differs from the source; `dm ctl verify {name} --fix` repairs it"
                );
            }
            return Ok(());
        }
        CtlCommand::CheckTask { file } => {
            let v = client
                .call(
                    Method::POST,
                    "/api/v1/tasks/check",
                    Some(file_body(&file, false)?),
                )
                .await?;
            let failed = v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|f| f.get("level").and_then(Value::as_str) == Some("fail"))
            });
            print(&v, args.output, render_findings);
            if failed {
                bail!("check-task found problems that stop the task from running");
            }
            return Ok(());
        }
    };
    print(&value, args.output, render);
    Ok(())
}

fn print(v: &Value, output: Output, render: fn(&Value) -> String) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Table => println!("{}", render(v)),
    }
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// Keeps the subtasks of `sources` in a task view (or a list of them).
fn only_sources(v: &mut Value, sources: &[String]) {
    match v {
        Value::Array(tasks) => tasks.iter_mut().for_each(|t| only_sources(t, sources)),
        Value::Object(task) => {
            if let Some(Value::Array(subtasks)) = task.get_mut("subtasks") {
                subtasks.retain(|s| {
                    s["source_id"]
                        .as_str()
                        .is_some_and(|id| sources.iter().any(|w| w == id))
                });
            }
        }
        _ => {}
    }
}

fn render_config_files(v: &Value) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["Kind", "Name", "File"]);
    for f in as_list(v) {
        t.add_row([
            f["kind"].as_str().unwrap_or("-"),
            f["name"].as_str().unwrap_or("-"),
            f["file"].as_str().unwrap_or("-"),
        ]);
    }
    t.to_string()
}

fn render_plain(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_str().map(str::to_string).unwrap_or(v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        None => v.to_string(),
    }
}

fn render_sources(v: &Value) -> String {
    let mut t = table(&["Source", "Address", "User", "GTID", "Worker", "Relay"]);
    let mut errors = vec![];
    for src in as_list(v) {
        let relay = &src["relay"];
        let relay_text = if src["enable_relay"] != Value::Bool(true) {
            "off".to_string()
        } else if relay.is_null() {
            "starting".to_string()
        } else {
            if let Some(m) = relay["last_error"]["message"].as_str() {
                errors.push(format!(
                    "{}: relay: {m}\n  hint: {}",
                    s(&src, "source_id"),
                    relay["last_error"]["hint"].as_str().unwrap_or("")
                ));
            }
            format!(
                "{} at {} ({} files, {})",
                s(relay, "stage"),
                s(relay, "position"),
                s(relay, "files"),
                human_bytes(relay["bytes"].as_u64().unwrap_or(0))
            )
        };
        t.add_row(vec![
            s(&src, "source_id"),
            s(&src, "address"),
            s(&src, "user"),
            s(&src, "enable_gtid"),
            s(&src, "worker"),
            relay_text,
        ]);
    }
    let mut out = t.to_string();
    for e in errors {
        out += "\n";
        out += &e;
    }
    out
}

/// `binlog replace|inject`: statements instead of / before a transaction.
async fn binlog_statements(
    client: &Client,
    verb: &str,
    name: &str,
    sql: Vec<String>,
    at: BinlogAt,
) -> Result<(Value, fn(&Value) -> String)> {
    let v = client
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{name}/binlog-{verb}"),
            Some(json!({ "sql": sql, "position": at.position, "source": at.source })),
        )
        .await?;
    Ok((v, render_tasks))
}

async fn relay_op(
    client: &Client,
    source: &str,
    op: &str,
    filename: Option<String>,
) -> Result<(Value, fn(&Value) -> String)> {
    let v = client
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/sources/{source}/relay/{op}"),
            Some(json!({ "filename": filename })),
        )
        .await?;
    Ok((v, render_relay))
}

fn render_validation(v: &Value) -> String {
    let result = match (&v["error"], &v["equal"]) {
        (Value::Object(e), _) => format!("error: {}", e["message"].as_str().unwrap_or("")),
        (_, Value::Bool(true)) => "equal".into(),
        (_, Value::Bool(false)) => "DIFFERENT".into(),
        _ => "not run yet".into(),
    };
    let mut t = table(&[
        "Task",
        "Every",
        "Runs",
        "Last run",
        "Tables",
        "Rows",
        "Differences",
        "Result",
    ]);
    t.add_row(vec![
        s(v, "task"),
        format!("{}s", s(v, "interval_secs")),
        s(v, "runs"),
        v["last_finished"].as_u64().map_or("-".into(), |t| {
            format!("{}s ago", dm_core::status::now_secs().saturating_sub(t))
        }),
        s(v, "tables"),
        s(v, "rows"),
        s(v, "differences"),
        result,
    ]);
    let mut out = t.to_string();
    let diffs = v["diffs"].as_array().cloned().unwrap_or_default();
    if !diffs.is_empty() {
        let mut d = table(DIFF_HEADER);
        for pair in &diffs {
            d.add_row(diff_row(
                pair[0].as_str().unwrap_or("").to_string(),
                &pair[1],
            ));
        }
        out += "\n";
        out += &d.to_string();
    }
    out
}

fn render_relay(v: &Value) -> String {
    let mut out = format!(
        "source {}: relay {}",
        s(v, "source_id"),
        if v["enable_relay"] == Value::Bool(true) {
            s(v, "stage")
        } else {
            "off".into()
        }
    );
    if let Some(p) = v.get("purge").filter(|p| !p.is_null()) {
        let removed: Vec<&str> = p["removed"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out += &format!(
            "\nremoved {} file(s){}",
            removed.len(),
            if removed.is_empty() {
                String::new()
            } else {
                format!(": {}", removed.join(", "))
            }
        );
        if let Some(k) = p["kept"].as_str() {
            out += &format!("\nkept from there on: {k}");
        }
        if let Some(e) = p["error"].as_str() {
            out += &format!("\nerror: {e}");
        }
    }
    out
}

fn render_verify(v: &Value) -> String {
    let mut t = table(&[
        "Source",
        "Table",
        "Target",
        "Rows",
        "Chunks",
        "Differences",
        "Result",
    ]);
    let mut diffs = table(DIFF_HEADER);
    let mut any = false;
    for r in as_list(v) {
        let n = r["differences"].as_u64().unwrap_or(0);
        let result = match (&r["skipped"], n, r["fixed"].as_bool().unwrap_or(false)) {
            (Value::String(why), _, _) => format!("skipped: {why}"),
            (_, 0, _) => "equal".into(),
            (_, _, true) => "fixed".into(),
            _ => "DIFFERENT".into(),
        };
        t.add_row(vec![
            s(&r, "source"),
            s(&r, "table"),
            s(&r, "target"),
            s(&r, "rows"),
            s(&r, "chunks"),
            n.to_string(),
            result,
        ]);
        for d in r["diffs"].as_array().cloned().unwrap_or_default() {
            any = true;
            diffs.add_row(diff_row(s(&r, "target"), &d));
        }
    }
    if any {
        format!("{t}\n{diffs}")
    } else {
        t.to_string()
    }
}

const DIFF_HEADER: &[&str] = &["Table", "Key", "Source row", "Target row", "Fix"];

/// A row that differs between source and target (verify, validation), with its fix.
fn diff_row(table: String, d: &Value) -> Vec<String> {
    vec![
        table,
        s(d, "key"),
        s(d, "source"),
        s(d, "target"),
        s(d, "fix"),
    ]
}

fn render_schema(v: &Value) -> String {
    let mut t = table(&["Table", "Columns", "Primary key"]);
    for tb in as_list(v) {
        let cols: Vec<String> = tb["columns"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| format!("{} {}", s(c, "name"), s(c, "data_type")))
            .collect();
        let pk: Vec<String> = tb["primary_key"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        t.add_row(vec![
            format!("{}.{}", s(&tb["name"], "schema"), s(&tb["name"], "table")),
            cols.join(", "),
            pk.join(", "),
        ]);
    }
    t.to_string()
}

fn render_operators(v: &Value) -> String {
    let mut t = table(&["Source", "Position", "Action", "Statements"]);
    for o in as_list(v) {
        let sql = o["sql"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(";\n")
            })
            .unwrap_or_default();
        t.add_row(vec![
            s(&o, "source"),
            s(&o, "position"),
            s(&o, "action"),
            sql,
        ]);
    }
    t.to_string()
}

fn render_locks(v: &Value) -> String {
    let list = as_list(v);
    if list.is_empty() {
        return "no shard DDL lock is waiting".into();
    }
    let mut t = table(&[
        "Task",
        "Target",
        "Mode",
        "Arrived",
        "Waiting for",
        "Conflict",
    ]);
    for l in list {
        let arrived: Vec<String> = l["arrived"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                format!(
                    "{}:{} sent {}",
                    s(&a["shard"], "source"),
                    s(&a["shard"], "table"),
                    a["ddls"]
                        .as_array()
                        .map(|d| d
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; "))
                        .unwrap_or_default()
                )
            })
            .collect();
        let waiting: Vec<String> = l["waiting_for"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|w| format!("{}:{}", s(w, "source"), s(w, "table")))
            .chain(
                l["catching_up"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|w| {
                        format!(
                            "{}:{} (released, catching up)",
                            s(w, "source"),
                            s(w, "table")
                        )
                    }),
            )
            .collect();
        t.add_row(vec![
            s(&l, "task"),
            s(&l, "target"),
            s(&l, "mode"),
            arrived.join("\n"),
            waiting.join("\n"),
            s(&l, "conflict"),
        ]);
    }
    t.to_string()
}

fn render_members(v: &Value) -> String {
    let mut out = vec![];
    if let Some(ms) = v.get("masters").and_then(Value::as_array) {
        let mut t = table(&["Master", "Address", "Alive", "Leader"]);
        for m in ms {
            let insecure = m.get("insecure").and_then(Value::as_bool) == Some(true);
            t.add_row(vec![
                s(m, "name"),
                if insecure {
                    format!("{} INSECURE (no TLS/auth)", s(m, "addr"))
                } else {
                    s(m, "addr")
                },
                s(m, "alive"),
                s(m, "leader"),
            ]);
        }
        out.push(t.to_string());
    }
    if let Some(ws) = v.get("workers").and_then(Value::as_array) {
        let mut t = table(&["Worker", "Stage", "Source"]);
        for w in ws {
            t.add_row(vec![s(w, "name"), s(w, "stage"), s(w, "source")]);
        }
        out.push(t.to_string());
    }
    out.join("\n")
}

/// A task table of `header`'s columns: a row per task warning (in the last
/// column), one for a task without subtasks (its stage in column `stage_at`), and
/// `subtask_row(task, subtask)` for each subtask.
fn task_table(
    v: &Value,
    header: &[&str],
    stage_at: usize,
    subtask_row: impl Fn(&Value, &Value) -> Vec<String>,
) -> Table {
    let mut t = table(header);
    let dashes = |n: usize| std::iter::repeat_n("-".to_string(), n);
    for task in as_list(v) {
        for w in task["warnings"].as_array().cloned().unwrap_or_default() {
            let mut row = vec![s(&task, "name")];
            row.extend(dashes(header.len() - 2));
            row.push(format!("warning: {}", w.as_str().unwrap_or_default()));
            t.add_row(row);
        }
        let subs = task["subtasks"].as_array().cloned().unwrap_or_default();
        if subs.is_empty() {
            let mut row = vec![s(&task, "name")];
            row.extend(dashes(stage_at - 1));
            row.push(s(&task, "stage"));
            row.extend(dashes(header.len() - stage_at - 1));
            t.add_row(row);
        }
        for st in subs {
            t.add_row(subtask_row(&task, &st));
        }
    }
    t
}

fn render_tasks(v: &Value) -> String {
    let header = [
        "Task",
        "Source",
        "Worker",
        "Stage",
        "Phase",
        "Tables",
        "Rows loaded",
        "Applied",
        "Position",
        "Lag (s)",
        "Queue",
        "Last error",
    ];
    task_table(v, &header, 3, |task, st| {
        let num = |k: &str| st.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let applied = format!(
            "{} rows\n{:.0} rows/s\n{:.0} txn/s",
            s(st, "rows_applied"),
            num("rows_per_sec"),
            num("txns_per_sec")
        );
        vec![
            s(task, "name"),
            s(st, "source_id"),
            s(st, "worker"),
            s(st, "stage"),
            s(st, "phase"),
            format!("{}/{}", s(st, "tables_done"), s(st, "tables_total")),
            s(st, "rows_loaded"),
            applied,
            s(st, "position"),
            s(st, "lag_seconds"),
            s(st, "queue_depth"),
            subtask_note(st, true),
        ]
    })
    .to_string()
}

/// A subtask's last error (with its hint when `hint`), else its warnings and the online
/// schema changes waiting for their swap; `-` when there is nothing.
fn subtask_note(st: &Value, hint: bool) -> String {
    if let Some(e) = st.get("last_error").filter(|e| !e.is_null()) {
        let mut text = format!("[{}] {}", s(e, "code"), s(e, "message"));
        if hint {
            text.push_str(&format!("\nhint: {}", s(e, "hint")));
        }
        return text;
    }
    let mut notes: Vec<String> = st
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(|w| format!("warning: {w}"))
                .collect()
        })
        .unwrap_or_default();
    // gh-ost/pt-osc runs under way: what waits for their swap.
    for o in st
        .get("online_ddl")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let n = o["statements"].as_array().map_or(0, Vec::len);
        notes.push(format!(
            "{} on {}: {n} statement(s) wait for the swap",
            s(o, "tool"),
            s(o, "table")
        ));
    }
    if notes.is_empty() {
        "-".into()
    } else {
        notes.join("\n")
    }
}

/// Width of the default task table: it fits a 100-column terminal.
const COMPACT_WIDTH: u16 = 100;

/// The default task table: stage, phase and progress, lag, position and what is wrong, in
/// 100 columns (`--wide` for every counter).
fn render_tasks_compact(v: &Value) -> String {
    let header = [
        "Task",
        "Source",
        "Stage",
        "Progress",
        "Lag",
        "Position",
        "Error / notes",
    ];
    let mut t = task_table(v, &header, 2, |task, st| {
        let num = |k: &str| st.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let progress = if s(st, "phase") == "incremental" {
            format!(
                "incremental: {} rows, {:.0}/s",
                s(st, "rows_applied"),
                num("rows_per_sec")
            )
        } else {
            format!(
                "{}: {}/{} tables, {} rows",
                s(st, "phase"),
                s(st, "tables_done"),
                s(st, "tables_total"),
                s(st, "rows_loaded")
            )
        };
        // The file and offset; the GTID set is in --wide and -o json.
        let position = s(st, "position")
            .split(' ')
            .next()
            .unwrap_or("-")
            .to_string();
        vec![
            s(task, "name"),
            s(st, "source_id"),
            s(st, "stage"),
            progress,
            s(st, "lag_seconds"),
            position,
            subtask_note(st, false),
        ]
    });
    t.set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(COMPACT_WIDTH);
    // Names and positions stay whole; progress and notes wrap.
    for i in [0, 1, 2, 4, 5] {
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    t.to_string()
}

fn render_findings(v: &Value) -> String {
    let mut t = table(&["Subject", "Check", "Level", "Finding", "Fix"]);
    for f in as_list(v) {
        t.add_row(vec![
            s(&f, "subject"),
            s(&f, "check"),
            s(&f, "level"),
            s(&f, "message"),
            s(&f, "fix"),
        ]);
    }
    t.to_string()
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{:.1} KiB", n as f64 / 1024.0),
    }
}
