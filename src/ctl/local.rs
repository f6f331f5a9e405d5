//! Commands that run here, without a master: `encrypt`, `token new`, `plugin check`.

use super::args::{CtlCommand, Output, PluginOp, TokenOp};
use anyhow::{anyhow, bail, Result};
use dm_core::config::{load_file, StandaloneConfig};
use std::path::{Path, PathBuf};

/// Runs `command` when it is one of these; `false` when it needs a master.
pub fn run(command: &CtlCommand, output: Output) -> Result<bool> {
    match command {
        CtlCommand::Encrypt {
            plaintext,
            key_file,
        } => encrypt(plaintext.as_deref(), key_file.clone())?,
        CtlCommand::Token {
            op: TokenOp::New { name, role },
        } => new_token(name, role, output)?,
        CtlCommand::Plugin {
            op: PluginOp::Check { file },
        } => {
            let report = crate::plugin_check::check(file)?;
            super::print(&report, output, crate::plugin_check::render);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The encrypted form of a password with the deployment's key (DM_SECRET_KEY, `--key-file`,
/// else ./dm.yaml's).
fn encrypt(plaintext: Option<&str>, key_file: Option<PathBuf>) -> Result<()> {
    let read;
    let plaintext = match plaintext {
        Some(p) => p,
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            read = line.trim_end_matches(['\n', '\r']).to_string();
            if read.is_empty() {
                bail!(
                    "no password on standard input: `printf '%s' \"$PASSWORD\" | dm ctl encrypt`"
                );
            }
            &read
        }
    };
    let key_file = key_file.or_else(|| {
        let cfg = load_file::<StandaloneConfig>(Path::new("dm.yaml")).ok()?;
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
    Ok(())
}

#[derive(serde::Serialize)]
struct NewToken<'a> {
    token: &'a str,
    entry: TokenEntry<'a>,
}

#[derive(serde::Serialize)]
struct TokenEntry<'a> {
    name: &'a str,
    role: &'a str,
    sha256: &'a str,
}

fn new_token(name: &str, role: &str, output: Output) -> Result<()> {
    if !matches!(role, "admin" | "viewer") {
        bail!("--role {role}: use admin or viewer");
    }
    let (token, sha256) = dm_core::api_auth::new_token();
    let entry = TokenEntry {
        name,
        role,
        sha256: &sha256,
    };
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string(&NewToken {
                token: &token,
                entry
            })?
        ),
        Output::Table => println!(
            "token: {token}\n  give it to `dm ctl --token` or DM_TOKEN (and a worker's token-file); it is not stored anywhere\n\nadd to every master's config (dm.yaml / master.yaml):\nauth:\n  tokens:\n    - {{name: {name}, role: {role}, sha256: {sha256}}}"
        ),
    }
    Ok(())
}
