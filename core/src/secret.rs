//! Encrypted passwords: `enc:` + base64 of a 12-byte nonce and the AES-256-GCM ciphertext.
//! Masters store every password they are given this way (source and task files may hold them
//! in clear or already encrypted, `dm ctl encrypt <password>`).
//!
//! The key (32 bytes, written as 64 hex digits) is the same for every dm process of a
//! deployment: `DM_SECRET_KEY`, else the file `secret-key-path` names; a standalone makes one
//! in its data dir (`secret.key`, 0600) on its first start. There is no built-in key: without
//! a key nothing is encrypted or decrypted, and the error says how to give one.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use std::path::Path;
use std::sync::OnceLock;

const PREFIX: &str = "enc:";

/// The key this process loaded (`init`).
static KEY: OnceLock<[u8; 32]> = OnceLock::new();

fn parse_key(text: &str, from: &str) -> Result<[u8; 32], String> {
    let bytes =
        hex::decode(text.trim()).map_err(|e| format!("{from} is not 64 hex digits: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{from} must be 64 hex digits (32 bytes)"))
}

/// Loads the process's key: `DM_SECRET_KEY`, else the file `path`; with `create`, a missing
/// file is made with a new random key (0600). `Ok(false)`: no key.
pub fn init(path: Option<&Path>, create: bool) -> Result<bool, String> {
    let key = if let Ok(text) = std::env::var("DM_SECRET_KEY") {
        parse_key(&text, "DM_SECRET_KEY")?
    } else if let Some(path) = path {
        match std::fs::read_to_string(path) {
            Ok(text) => parse_key(&text, &path.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                use aes_gcm::aead::rand_core::RngCore;
                let mut key = [0u8; 32];
                OsRng.fill_bytes(&mut key);
                crate::durable::write_atomically(path, hex::encode(key).as_bytes())
                    .map_err(|e| format!("cannot write the secret key {}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "secret key made: it encrypts the stored passwords; back it up with the data dir");
                key
            }
            Err(e) => {
                return Err(format!(
                    "cannot read the secret key {}: {e}",
                    path.display()
                ))
            }
        }
    } else {
        return Ok(false);
    };
    let _ = KEY.set(key);
    Ok(true)
}

fn cipher() -> Result<Aes256Gcm, String> {
    let key = match KEY.get() {
        Some(k) => *k,
        None => match std::env::var("DM_SECRET_KEY") {
            Ok(text) => parse_key(&text, "DM_SECRET_KEY")?,
            Err(_) => return Err("no secret key: set DM_SECRET_KEY or `secret-key-path` (64 hex digits, the same for every dm process of the deployment)".into()),
        },
    };
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)))
}

/// The password as it is stored: encrypted, unless it is empty or encrypted already.
pub fn seal(value: &str) -> Result<String, String> {
    if value.is_empty() || value.starts_with(PREFIX) {
        return Ok(value.to_string());
    }
    encrypt(value)
}

/// Whether two stored or written passwords are the same password.
pub fn same(a: &str, b: &str) -> bool {
    a == b || matches!((reveal(a), reveal(b)), (Ok(x), Ok(y)) if x == y)
}

/// The encrypted form of `plain`, for a config file.
pub fn encrypt(plain: &str) -> Result<String, String> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher()?
        .encrypt(&nonce, plain.as_bytes())
        .map_err(|e| format!("cannot encrypt: {e}"))?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(out)
    ))
}

/// The password as the server wants it: `enc:` values decrypted, others as they are.
pub fn reveal(value: &str) -> Result<String, String> {
    let Some(sealed) = value.strip_prefix(PREFIX) else {
        return Ok(value.to_string());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|e| format!("not an encrypted password: {e}"))?;
    if bytes.len() < 12 {
        return Err("not an encrypted password: too short".into());
    }
    let (nonce, data) = bytes.split_at(12);
    let plain = cipher()?
        .decrypt(Nonce::from_slice(nonce), data)
        .map_err(|_| {
            "cannot decrypt it: it was encrypted with another key (DM_SECRET_KEY / secret-key-path)"
                .to_string()
        })?;
    String::from_utf8(plain).map_err(|_| "decrypted to something that is not text".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        assert!(super::init(Some(&path), true).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = super::encrypt("s3cret!").unwrap();
        assert!(e.starts_with("enc:") && !e.contains("s3cret"));
        assert_eq!(super::reveal(&e).unwrap(), "s3cret!");
        assert_eq!(super::reveal("plain").unwrap(), "plain");
        assert!(super::reveal("enc:AAAAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert_eq!(super::seal(&e).unwrap(), e);
        assert!(super::same(&super::seal("x").unwrap(), "x"));
        assert!(!super::same(&super::seal("x").unwrap(), "y"));
    }
}
