//! Secrets at rest and random values.
//!
//! Webhook secrets are sealed with XChaCha20-Poly1305 under the master key; the row's id is the
//! associated data, so a sealed secret copied onto another row does not open.
//! API tokens are random and stored only as their SHA-256 digest (they are high-entropy, so a
//! slow password hash would add nothing but latency).

use std::io::Write;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;

/// Seals and opens secrets with the master key, and signs what must not be forged without it.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
    /// HMAC-SHA256 key for signatures, derived from the master key (never the key itself).
    mac_key: [u8; 32],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be opened: the master key differs from the one that sealed it")]
pub struct OpenError;

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        let mac_key = hmac_sha256(key, b"tocsin signatures v1");
        Self { aead: XChaCha20Poly1305::new(key.into()), mac_key }
    }

    /// A signature of `message` (hex HMAC-SHA256 under a key derived from the master key): what
    /// someone who can write to the database but lacks the master key cannot make.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(hmac_sha256(&self.mac_key, message))
    }

    /// Whether `signature` is [`Cipher::sign`]'s for `message` (compared in constant time).
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        constant_time_eq(self.sign(message).as_bytes(), signature.as_bytes())
    }

    /// nonce ‖ ciphertext ‖ tag, bound to `context` (the owning row's id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: context })
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.aead.decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: context }).map_err(|_| OpenError)
    }
}

/// The master key: from configuration, or from `master.key` in the data directory, created with
/// mode 0600 on first start.
pub fn load_or_create_master_key(given: Option<[u8; 32]>, data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = given {
        return Ok(key);
    }
    let path = data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            parse_master_key(text.trim()).map_err(|e| anyhow::anyhow!("master key file {}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let key = random_bytes::<32>();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            writeln!(file, "{}", hex::encode(key))?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "created a new master key file");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read master key file {}: {e}", path.display())),
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// URL-safe base64 without padding, for tokens.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings (length may leak, content does not).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Decodes a 32-byte key given as 64 hex digits or as base64.
pub fn parse_master_key(raw: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(raw).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
            .map_err(|_| "must be 32 bytes as 64 hex digits or base64".to_string())?
    };
    bytes.try_into().map_err(|_| "must be exactly 32 bytes (64 hex digits or 44 base64 characters)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_context_binding() {
        let c = Cipher::new(&[7u8; 32]);
        let sealed = c.seal(b"whsec_abc", b"row-1");
        assert_eq!(c.open(&sealed, b"row-1").unwrap(), b"whsec_abc");
        assert!(c.open(&sealed, b"row-2").is_err());
        assert!(Cipher::new(&[8u8; 32]).open(&sealed, b"row-1").is_err());
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_master_key(None, dir.path()).unwrap();
        let b = load_or_create_master_key(None, dir.path()).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
