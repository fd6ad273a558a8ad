//! Sealing API secret keys at rest with XChaCha20-Poly1305: TC3 signatures are HMACs keyed
//! by the secret key itself, so it must be recoverable, and a database dump alone must not
//! reveal it.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::error::{StoreError, StoreResult};

/// The 32-byte key that seals API secrets. Never printed.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(***)")
    }
}

impl SealingKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SealingKey {
        SealingKey(bytes)
    }

    pub fn from_hex(text: &str) -> StoreResult<SealingKey> {
        let bytes = decode_hex(text.trim())
            .filter(|bytes| bytes.len() == 32)
            .ok_or_else(|| StoreError::invalid("the secret key must be 64 hex digits (32 bytes)"))?;
        let mut key = [0; 32];
        key.copy_from_slice(&bytes);
        Ok(SealingKey(key))
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key.
    pub fn load_or_create(path: &Path) -> StoreResult<SealingKey> {
        let io = |error: std::io::Error| StoreError::invalid(format!("secret key file {}: {error}", path.display()));
        match std::fs::read_to_string(path) {
            Ok(text) => SealingKey::from_hex(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut key = [0_u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                write_private(path, &encode_hex(&key)).map_err(io)?;
                Ok(SealingKey(key))
            }
            Err(error) => Err(io(error)),
        }
    }

    pub(crate) fn seal(&self, plain: &str) -> String {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0_u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of a short secret cannot fail");
        format!("v1:{}{}", encode_hex(&nonce), encode_hex(&sealed))
    }

    pub(crate) fn open(&self, sealed: &str) -> StoreResult<String> {
        let corrupt = || StoreError::Corrupt("an API secret cannot be unsealed: wrong RESPACK_SECRET_KEY?".into());
        let bytes = sealed.strip_prefix("v1:").and_then(decode_hex).ok_or_else(corrupt)?;
        if bytes.len() < 24 {
            return Err(corrupt());
        }
        let (nonce, body) = bytes.split_at(24);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let plain = cipher.decrypt(XNonce::from_slice(nonce), body).map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key() {
        let key = SealingKey::from_bytes([7; 32]);
        let sealed = key.seal("s3cr3t-key");
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(sealed, key.seal("s3cr3t-key"), "fresh nonce each time");
        assert_eq!(key.open(&sealed).unwrap(), "s3cr3t-key");
        assert!(SealingKey::from_bytes([8; 32]).open(&sealed).is_err());
        assert!(key.open("v1:zz").is_err());
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("respack-seal-{}", std::process::id()));
        let path = dir.join("secret.key");
        let first = SealingKey::load_or_create(&path).unwrap();
        let second = SealingKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, second.0);
        assert!(SealingKey::from_hex("abc").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
