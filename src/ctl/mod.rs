//! `dm ctl`: the command line for people. Talks only to the master's HTTP API through
//! `dm_core::api::Client`; prints tables by default and JSON with `--output json`.
//!
//! `args` is the command line, `commands` calls the API for each command, `render` draws
//! the answers (`task_table` the task tables), `files` reads and writes files here, `local` runs what needs no master.

mod args;
mod commands;
mod files;
mod local;
mod render;
mod subcommands;
mod task_table;
mod watch;

pub use args::CtlArgs;

use anyhow::Result;
use args::Output;
use dm_core::api::{Client, Connect};
use dm_core::config::{load_file, StandaloneConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub async fn run(args: CtlArgs) -> Result<()> {
    if local::run(&args.command, args.output)? {
        return Ok(());
    }
    let (addrs, tls_ca) = master_addr(args.master_addr, args.tls_ca);
    let client = Client::new(
        &addrs,
        &Connect {
            tls_ca: tls_ca.as_deref(),
            identity: args.tls_cert.as_deref().zip(args.tls_key.as_deref()),
            token: args.token.as_deref(),
            // `verify` of a large task takes as long as it takes.
            timeout: Some(Duration::from_secs(24 * 3600)),
        },
    )?;
    commands::run(&client, args.command, args.output).await
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

/// `v` as JSON (`-o json`: what the API answered) or as a table drawn by `render`.
fn print<T: Serialize + ?Sized>(v: &T, output: Output, render: impl Fn(&T) -> String) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Table => println!("{}", render(v)),
    }
}
