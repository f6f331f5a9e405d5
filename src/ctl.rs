//! `dm ctl`: the command line for people. Talks only to the master's HTTP API; prints tables by
//! default and JSON with `--output json`.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use dm_core::config::{load_file, StandaloneConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CtlArgs {
    /// Address of the master's API (default: master-addr of ./dm.yaml, else 127.0.0.1:8261).
    #[arg(long, env = "DM_MASTER_ADDR", global = true)]
    master_addr: Option<String>,
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
    /// Start a task from its task file.
    StartTask {
        file: PathBuf,
        /// Forget the task's checkpoints in the target and start over.
        #[arg(long)]
        remove_meta: bool,
    },
    /// Stop a task (its checkpoints stay in the target; start-task resumes from them).
    StopTask {
        name: String,
    },
    PauseTask {
        name: String,
    },
    /// Resume a task paused by a user or by an error.
    ResumeTask {
        name: String,
    },
    /// Stage, phase, progress, position, lag and last error of tasks.
    QueryStatus {
        name: Option<String>,
        /// Draw progress bars and follow the task until it finishes or pauses.
        #[arg(long, requires = "name")]
        watch: bool,
    },
    /// Check sources and target of a task file before starting it.
    CheckTask {
        file: PathBuf,
    },
    /// Act on the binlog event a task stopped at.
    Binlog {
        #[command(subcommand)]
        op: BinlogOp,
    },
}

#[derive(Subcommand)]
enum BinlogOp {
    /// Skip the transaction each paused subtask of the task stopped at, and resume.
    Skip { name: String },
    /// Replace that transaction by statements run on the target instead, and resume.
    Replace {
        name: String,
        #[arg(required = true)]
        sql: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SourceOp {
    Create { file: PathBuf },
    Show,
    Stop { source_id: String },
}

pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the master at {}: {e}\n  hint: start it with `dm standalone -c dm.yaml`, or pass --master-addr",
                self.base
            )
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

fn master_addr(arg: Option<String>) -> String {
    if let Some(a) = arg {
        return a;
    }
    let local = Path::new("dm.yaml");
    if local.exists() {
        if let Ok(cfg) = load_file::<StandaloneConfig>(local) {
            return cfg.master_addr;
        }
    }
    dm_core::config::StandaloneConfig::default().master_addr
}

fn file_body(path: &Path, remove_meta: bool) -> Result<Value> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(
        json!({ "file": path.display().to_string(), "content": content, "remove_meta": remove_meta }),
    )
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
    let addr = master_addr(args.master_addr);
    let base = if addr.starts_with("http") {
        addr
    } else {
        format!("http://{addr}")
    };
    let client = Client {
        base,
        http: reqwest::Client::new(),
    };
    use reqwest::Method;
    let (value, render): (Value, fn(&Value) -> String) = match args.command {
        CtlCommand::OperateSource { op } => match op {
            SourceOp::Create { file } => (
                client
                    .call(
                        Method::POST,
                        "/api/v1/sources",
                        Some(file_body(&file, false)?),
                    )
                    .await?,
                render_sources,
            ),
            SourceOp::Show => (
                client.call(Method::GET, "/api/v1/sources", None).await?,
                render_sources,
            ),
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
        CtlCommand::StartTask { file, remove_meta } => (
            client
                .call(
                    Method::POST,
                    "/api/v1/tasks",
                    Some(file_body(&file, remove_meta)?),
                )
                .await?,
            render_tasks,
        ),
        CtlCommand::StopTask { name } => (
            client
                .call(Method::DELETE, &format!("/api/v1/tasks/{name}"), None)
                .await?,
            render_plain,
        ),
        CtlCommand::PauseTask { name } => (
            client
                .call(Method::POST, &format!("/api/v1/tasks/{name}/pause"), None)
                .await?,
            render_tasks,
        ),
        CtlCommand::Binlog {
            op: BinlogOp::Skip { name },
        } => (
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/tasks/{name}/binlog-skip"),
                    None,
                )
                .await?,
            render_tasks,
        ),
        CtlCommand::Binlog {
            op: BinlogOp::Replace { name, sql },
        } => (
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/tasks/{name}/binlog-replace"),
                    Some(serde_json::json!({ "sql": sql })),
                )
                .await?,
            render_tasks,
        ),
        CtlCommand::ResumeTask { name } => (
            client
                .call(Method::POST, &format!("/api/v1/tasks/{name}/resume"), None)
                .await?,
            render_tasks,
        ),
        CtlCommand::QueryStatus {
            name: Some(n),
            watch: true,
        } => return crate::watch::watch(&client, &n).await,
        CtlCommand::QueryStatus { name, .. } => match name {
            Some(n) => (
                client
                    .call(Method::GET, &format!("/api/v1/tasks/{n}"), None)
                    .await?,
                render_tasks,
            ),
            None => (
                client.call(Method::GET, "/api/v1/tasks", None).await?,
                render_tasks,
            ),
        },
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
    let mut t = table(&["Source", "Address", "User", "GTID", "Worker"]);
    for src in as_list(v) {
        t.add_row(vec![
            s(&src, "source_id"),
            s(&src, "address"),
            s(&src, "user"),
            s(&src, "enable_gtid"),
            s(&src, "worker"),
        ]);
    }
    t.to_string()
}

fn render_tasks(v: &Value) -> String {
    let mut t = table(&[
        "Task",
        "Source",
        "Stage",
        "Phase",
        "Tables",
        "Rows loaded",
        "Applied",
        "Position",
        "Lag (s)",
        "Queue",
        "Last error",
    ]);
    for task in as_list(v) {
        let subs = task
            .get("subtasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if subs.is_empty() {
            t.add_row(vec![
                s(&task, "name"),
                "-".into(),
                s(&task, "stage"),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for st in subs {
            let num = |k: &str| st.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let applied = format!(
                "{} rows\n{:.0} rows/s\n{:.0} txn/s",
                s(&st, "rows_applied"),
                num("rows_per_sec"),
                num("txns_per_sec")
            );
            let err = match st.get("last_error") {
                Some(e) if !e.is_null() => format!(
                    "[{}] {}\nhint: {}",
                    s(e, "code"),
                    s(e, "message"),
                    s(e, "hint")
                ),
                _ => "-".into(),
            };
            t.add_row(vec![
                s(&task, "name"),
                s(&st, "source_id"),
                s(&st, "stage"),
                s(&st, "phase"),
                format!("{}/{}", s(&st, "tables_done"), s(&st, "tables_total")),
                s(&st, "rows_loaded"),
                applied,
                s(&st, "position"),
                s(&st, "lag_seconds"),
                s(&st, "queue_depth"),
                err,
            ]);
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
