//! The `dm` binary: wires the roles of dm-core to a command line.

mod ctl;
mod plugin_check;

use anyhow::Result;
use clap::{Parser, Subcommand};
use dm_core::config::{load_file, MasterConfig, StandaloneConfig, WorkerConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "dm",
    version,
    about = "Migrate MySQL/MariaDB databases into MySQL-compatible targets and keep them in sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Master and worker in one process with an embedded metadata store.
    Standalone {
        /// The standalone config file.
        #[arg(short, long, default_value = "dm.yaml")]
        config: PathBuf,
    },
    /// A master of a cluster: etcd (its own member or existing endpoints), leader election,
    /// scheduling, the API.
    Master {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// A worker of a cluster: runs the sources the leader binds to it.
    Worker {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Operate sources and tasks through the master's API.
    Ctl(Box<ctl::CtlArgs>),
    /// Print a shell completion script: `dm completion bash > /etc/bash_completion.d/dm`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

/// mysql_async keeps up to 128 buffers of up to 4 MiB each for reuse: up to 512 MiB held
/// after big rows went by. dm keeps 16 of up to 1 MiB unless the environment says otherwise.
fn bound_mysql_buffer_pool() {
    for (name, value) in [
        ("MYSQL_ASYNC_BUFFER_POOL_CAP", "16"),
        ("MYSQL_ASYNC_BUFFER_SIZE_CAP", "1048576"),
    ] {
        if std::env::var_os(name).is_none() {
            // Single-threaded still: no runtime or thread is started yet.
            std::env::set_var(name, value);
        }
    }
}

fn main() {
    dm_core::install_crypto_provider();
    bound_mysql_buffer_pool();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Completion { shell } = cli.command {
        use clap::CommandFactory;
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "dm", &mut script);
        // A closed pipe (`| head`) is not an error.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new()?;
    // The roles run plugins with the WASM host; ctl runs none (`plugin check` makes its own).
    let host =
        || -> dm_core::hooks::Host { Some(std::sync::Arc::new(dm_plugins::WasmHost::new())) };
    match cli.command {
        Command::Standalone { config } => {
            let cfg: StandaloneConfig = if config.exists() {
                load_file(&config).map_err(report)?
            } else {
                anyhow::bail!("{}: no such file; pass the standalone config with -c (see dm.yaml in the repository)", config.display());
            };
            init_tracing(&cfg.log_level);
            rt.block_on(dm_core::standalone::run(cfg, host()))
                .map_err(report)
        }
        Command::Master { config } => {
            let cfg: MasterConfig = load_file(&config).map_err(report)?;
            init_tracing(&cfg.log_level);
            rt.block_on(dm_core::master::cluster::run(cfg, host()))
                .map_err(report)
        }
        Command::Worker { config } => {
            let cfg: WorkerConfig = load_file(&config).map_err(report)?;
            init_tracing(&cfg.log_level);
            rt.block_on(dm_core::worker::cluster::run(cfg, host()))
                .map_err(report)
        }
        Command::Ctl(args) => rt.block_on(ctl::run(*args)),
        Command::Completion { .. } => unreachable!("handled above"),
    }
}

/// An engine error as the user sees it: code, message, hint.
fn report(e: dm_core::Error) -> anyhow::Error {
    let hint = e.hint();
    if hint.is_empty() {
        anyhow::anyhow!("[{}] {e}", e.code())
    } else {
        anyhow::anyhow!("[{}] {e}\n  hint: {hint}", e.code())
    }
}
