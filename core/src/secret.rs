//! Encrypted passwords in source and task files (`dm ctl encrypt <password>` prints one):
//! `enc:` + base64 of a 12-byte nonce and the AES-256-GCM ciphertext. The key is
//! `DM_SECRET_KEY` (64 hex digits), the same for every dm process of a cluster; without it a
//! built-in key is used, which hides passwords from casual eyes only (as TiDB DM's default).

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;

const PREFIX: &str = "enc:";
const BUILT_IN: [u8; 32] = *b"dm: not a secret, set a real key";

fn cipher() -> Result<Aes256Gcm, String> {
    let key = match std::env::var("DM_SECRET_KEY") {
        Ok(hex_key) => {
            let bytes = hex::decode(hex_key.trim())
                .map_err(|e| format!("DM_SECRET_KEY is not hex: {e}"))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| "DM_SECRET_KEY must be 64 hex digits (32 bytes)".to_string())?
        }
        Err(_) => BUILT_IN,
    };
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)))
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
            "cannot decrypt it: it was encrypted with another key (DM_SECRET_KEY)".to_string()
        })?;
    String::from_utf8(plain).map_err(|_| "decrypted to something that is not text".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_plain_text() {
        let e = super::encrypt("s3cret!").unwrap();
        assert!(e.starts_with("enc:") && !e.contains("s3cret"));
        assert_eq!(super::reveal(&e).unwrap(), "s3cret!");
        assert_eq!(super::reveal("plain").unwrap(), "plain");
        assert!(super::reveal("enc:AAAAAAAAAAAAAAAAAAAAAAAA").is_err());
    }
}
