//! What each `dm ctl` command asks the master, and how its answer is shown.

use super::args::*;
use super::files::{self, file_body, name_field, task_name};
use super::{print, render, task_table};
use anyhow::{bail, Context, Result};
use dm_core::api::types::*;
use dm_core::api::Client;

impl PositionArgs {
    fn to_api(&self) -> BinlogAt {
        BinlogAt {
            position: self.position.clone(),
            source: self.source.clone(),
        }
    }
}

pub async fn run(client: &Client, command: CtlCommand, out: Output) -> Result<()> {
    match command {
        CtlCommand::OperateSource { op } => source(client, op, out).await,
        CtlCommand::StartRelay(a) => relay(client, &a.source_id, "start", None, out).await,
        CtlCommand::StopRelay(a) => relay(client, &a.source_id, "stop", None, out).await,
        CtlCommand::PauseRelay(a) => relay(client, &a.source_id, "pause", None, out).await,
        CtlCommand::ResumeRelay(a) => relay(client, &a.source_id, "resume", None, out).await,
        CtlCommand::PurgeRelay {
            source_id,
            filename,
        } => relay(client, &source_id, "purge", filename, out).await,
        CtlCommand::StartTask {
            file,
            remove_meta,
            skip_precheck,
            start_time,
        } => {
            let body = FileBody {
                skip_precheck,
                start_time,
                ..file_body(&file, remove_meta)?
            };
            show_task(&client.start_task(&body).await?, out);
            Ok(())
        }
        CtlCommand::UpdateTask { file } => {
            let body = file_body(&file, false)?;
            let task = dm_core::config::TaskConfig::parse(&body.file, &body.content)
                .map_err(|e| anyhow::anyhow!("[{}] {e}\n  hint: {}", e.code(), e.hint()))?;
            show_task(&client.update_task(&task.name, &body).await?, out);
            Ok(())
        }
        CtlCommand::StopTask { name, source } => {
            let stopped = client.stop_task(&task_name(&name)?, &source).await?;
            print(&stopped, out, render::plain);
            Ok(())
        }
        CtlCommand::PauseTask { name, source } => {
            show_task(&client.pause_task(&task_name(&name)?, &source).await?, out);
            Ok(())
        }
        CtlCommand::Throttle {
            name,
            action,
            rows_per_second,
        } => {
            let request = match (action, rows_per_second) {
                (ThrottleAction::On, _) => ThrottleRequest::On,
                (ThrottleAction::Off, _) => ThrottleRequest::Off,
                (ThrottleAction::Rate, Some(rows_per_second)) => {
                    ThrottleRequest::Rate { rows_per_second }
                }
                (ThrottleAction::Rate, None) => bail!(
                    "throttle {name} rate needs the rows per second: `dm ctl throttle {name} rate 2000` (0: no limit)"
                ),
            };
            show_task(
                &client.throttle_task(&task_name(&name)?, &request).await?,
                out,
            );
            Ok(())
        }
        CtlCommand::Resync {
            name,
            tables,
            source,
        } => {
            let body = ResyncBody {
                tables,
                sources: source,
            };
            show_task(&client.resync_task(&task_name(&name)?, &body).await?, out);
            Ok(())
        }
        CtlCommand::ResumeTask { name, source } => {
            show_task(&client.resume_task(&task_name(&name)?, &source).await?, out);
            Ok(())
        }
        CtlCommand::GetConfig { kind, name, file } => {
            let text = client.get_config(&kind, &name).await?.content;
            match file {
                Some(f) => {
                    dm_core::durable::write_atomically(&f, text.as_bytes())
                        .with_context(|| format!("cannot write {}", f.display()))?;
                    println!("{kind} `{name}` written to {}", f.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        CtlCommand::Config { op } => {
            let done = match op {
                ConfigOp::Export { path } => files::export(client, &path).await?,
                ConfigOp::Import { path } => files::import(client, &path).await?,
            };
            print(done.as_slice(), out, render::files_done);
            Ok(())
        }
        CtlCommand::QueryStatus {
            name: Some(n),
            watch: true,
            ..
        } => super::watch::watch(client, &task_name(&n)?).await,
        CtlCommand::QueryStatus {
            name,
            source,
            wide,
            more,
            ..
        } => query_status(client, name, &source, wide || more, out).await,
        CtlCommand::Verify { name, fix } => {
            let reports = client.verify(&name, fix).await?;
            print(reports.as_slice(), out, render::verify);
            if reports.iter().any(|t| t.differences > 0 && !t.fixed) {
                bail!(
                    "the target differs from the source; `dm ctl verify {name} --fix` repairs it"
                );
            }
            Ok(())
        }
        CtlCommand::Validation { op } => {
            let status = match op {
                ValidationOp::Start { name, interval } => {
                    client.validation_start(&name, interval).await?
                }
                ValidationOp::Stop { name } => client.validation_stop(&name).await?,
                ValidationOp::Status { name } => client.validation_status(&name).await?,
            };
            print(&status, out, render::validation);
            Ok(())
        }
        CtlCommand::CheckTask { file } => {
            let findings = client.check_task(&file_body(&file, false)?).await?;
            print(findings.as_slice(), out, render::findings);
            if findings.iter().any(|f| f.level == Level::Fail) {
                bail!("check-task found problems that stop the task from running");
            }
            Ok(())
        }
        CtlCommand::Binlog { op } => binlog(client, op, out).await,
        CtlCommand::ShardDdlLock { op: None, task } => {
            let locks = client.shard_locks(task.as_deref()).await?;
            print(locks.as_slice(), out, render::locks);
            Ok(())
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
        } => {
            let body = UnlockBody {
                task,
                target,
                action: if exec { "exec" } else { "skip" }.into(),
                owner,
                force_remove,
            };
            print(&client.shard_unlock(&body).await?, out, render::plain);
            Ok(())
        }
        CtlCommand::BinlogSchema { op } => binlog_schema(client, op, out).await,
        CtlCommand::ListMember {
            master,
            worker,
            leader,
        } => {
            let mut m = client.members().await?;
            if leader {
                m.workers.clear();
                let l = m.leader.clone();
                m.masters.retain(|ms| Some(&ms.name) == l.as_ref());
            } else if master {
                m.workers.clear();
            } else if worker {
                m.masters.clear();
            }
            print(&m, out, render::members);
            Ok(())
        }
        CtlCommand::OfflineMember {
            master: _,
            worker,
            name,
        } => {
            let kind = if worker { "worker" } else { "master" };
            print(
                &client.offline_member(kind, &name).await?,
                out,
                render::plain,
            );
            Ok(())
        }
        CtlCommand::TransferSource { source_id, worker } => {
            let moved = client.transfer_source(&source_id, &worker).await?;
            print(&moved, out, render::plain);
            Ok(())
        }
        CtlCommand::OperateLeader { op } => {
            print(&client.operate_leader(&op).await?, out, render::plain);
            Ok(())
        }
        CtlCommand::Plugin { .. } | CtlCommand::Encrypt { .. } | CtlCommand::Token { .. } => {
            unreachable!("run by ctl::local without a master")
        }
    }
}

/// A task as start, update, pause, resume and the binlog operations answer it: every counter.
fn show_task(view: &TaskView, out: Output) {
    print(view, out, |v| {
        task_table::tasks_wide(std::slice::from_ref(v))
    });
}

async fn query_status(
    client: &Client,
    name: Option<String>,
    sources: &[String],
    wide: bool,
    out: Output,
) -> Result<()> {
    let only = |v: &mut TaskView| {
        if !sources.is_empty() {
            v.subtasks.retain(|s| sources.contains(&s.source_id));
        }
    };
    let draw = if wide {
        task_table::tasks_wide
    } else {
        task_table::tasks_compact
    };
    match name {
        Some(n) => {
            let mut view = client.get_task(&task_name(&n)?).await?;
            only(&mut view);
            print(&view, out, |v| draw(std::slice::from_ref(v)));
        }
        None => {
            let mut views = client.list_tasks().await?;
            views.iter_mut().for_each(only);
            print(views.as_slice(), out, draw);
        }
    }
    Ok(())
}

async fn source(client: &Client, op: SourceOp, out: Output) -> Result<()> {
    let views = match op {
        SourceOp::Create {
            print_sample_config: true,
            ..
        } => {
            print!("{}", include_str!("../../examples/source.yaml"));
            return Ok(());
        }
        SourceOp::Create { files, .. } => {
            let mut created = vec![];
            for file in files {
                let view = client
                    .create_source(&file_body(&file, false)?)
                    .await
                    .with_context(|| format!("creating the source of {}", file.display()))?;
                created.push(view);
            }
            created
        }
        SourceOp::Update { file } => {
            let body = file_body(&file, false)?;
            let Some(id) = name_field(&body.content, "source-id") else {
                bail!(
                    "{}: a source file names its source (`source-id:`)",
                    file.display()
                );
            };
            vec![client.update_source(&id, &body).await?]
        }
        SourceOp::Show { source } => {
            let mut all = client.list_sources().await?;
            if !source.is_empty() {
                all.retain(|s| source.contains(&s.source_id));
            }
            all
        }
        SourceOp::Stop { source_id } => {
            print(&client.stop_source(&source_id).await?, out, render::plain);
            return Ok(());
        }
    };
    print(views.as_slice(), out, render::sources);
    Ok(())
}

async fn relay(
    client: &Client,
    source: &str,
    op: &str,
    filename: Option<String>,
    out: Output,
) -> Result<()> {
    let answer = client
        .operate_relay(source, op, &RelayBody { filename })
        .await?;
    print(&answer, out, render::relay);
    Ok(())
}

async fn binlog(client: &Client, op: BinlogOp, out: Output) -> Result<()> {
    let view = match op {
        BinlogOp::Skip { name, at } => client.binlog_skip(&name, &at.to_api()).await?,
        BinlogOp::Revert { name, at } => client.binlog_revert(&name, &at.to_api()).await?,
        BinlogOp::Replace { name, sql, at } => {
            let body = BinlogStatements {
                sql,
                at: at.to_api(),
            };
            client.binlog_replace(&name, &body).await?
        }
        BinlogOp::Inject { name, sql, at } => {
            let body = BinlogStatements {
                sql,
                at: at.to_api(),
            };
            client.binlog_inject(&name, &body).await?
        }
        BinlogOp::List { name } => {
            let ops = client.binlog_list(&name).await?;
            print(ops.as_slice(), out, render::operators);
            return Ok(());
        }
    };
    show_task(&view, out);
    Ok(())
}

async fn binlog_schema(client: &Client, op: SchemaOp, out: Output) -> Result<()> {
    let (task, change) = match op {
        SchemaOp::List { task, source } => {
            let tables = client.schema_list(&task, source.as_deref()).await?;
            print(tables.as_slice(), out, render::schema);
            return Ok(());
        }
        SchemaOp::Update {
            task,
            table,
            file,
            source,
            from_source,
            from_target,
        } => {
            let (create, from) = match file {
                Some(file) => {
                    let create = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    (Some(create), None)
                }
                None => {
                    debug_assert!(from_source || from_target);
                    let from = if from_source { "source" } else { "target" };
                    (None, Some(from.to_string()))
                }
            };
            let change = SchemaChange {
                source,
                table,
                create,
                from,
            };
            (task, change)
        }
        SchemaOp::Delete {
            task,
            table,
            source,
        } => (
            task,
            SchemaChange {
                source,
                table,
                ..SchemaChange::default()
            },
        ),
    };
    let tables = client.schema_change(&task, &change).await?;
    print(tables.as_slice(), out, render::schema);
    Ok(())
}
