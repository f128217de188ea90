//! Webhook signing secrets.

use base64::Engine;

use super::FieldError;
use crate::crypto;

const WHSEC: &str = "whsec_";
/// An Ed25519 private key (its 32-byte seed, base64): never shown, only sealed at rest.
const WHSK: &str = "whsk_";
/// An Ed25519 public key (32 bytes, base64), as the API shows it.
pub const WHPK: &str = "whpk_";

/// A signing secret in plaintext. Its `Debug` never prints it; it leaves the process only in the
/// response that creates or rotates it, and sealed by the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The public half of the Ed25519 key with this seed.
pub fn ed25519_public_key(seed: &[u8; 32]) -> Option<[u8; 32]> {
    use ring::signature::KeyPair as _;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
    pair.public_key().as_ref().try_into().ok()
}

impl Secret {
    /// `whsec_` + base64 of 32 random bytes, as Standard Webhooks recommends.
    pub fn generate() -> Self {
        Self(format!("{WHSEC}{}", base64::engine::general_purpose::STANDARD.encode(crypto::random_bytes::<32>())))
    }

    /// A secret chosen by the user: 16–512 printable characters; a `whsec_` secret must carry
    /// base64 of 24–64 bytes so Standard Webhooks libraries accept it.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        if raw.len() < 16 || raw.len() > 512 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::new(field, "must be 16 to 512 printable characters without spaces"));
        }
        if raw.starts_with(WHSK) || raw.starts_with(WHPK) {
            return Err(FieldError::new(field, "whsk_ and whpk_ are Ed25519 keys, which Tocsin makes itself"));
        }
        if let Some(b64) = raw.strip_prefix(WHSEC) {
            match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(key) if (24..=64).contains(&key.len()) => {}
                _ => return Err(FieldError::new(field, "a whsec_ secret must be base64 of 24 to 64 bytes")),
            }
        }
        Ok(Self(raw.to_string()))
    }

    /// A new Ed25519 private key (`whsk_` + base64 of its 32-byte seed).
    pub fn generate_ed25519() -> Self {
        Self(format!("{WHSK}{}", base64::engine::general_purpose::STANDARD.encode(crypto::random_bytes::<32>())))
    }

    /// The Ed25519 seed, when this is an Ed25519 private key.
    pub fn ed25519_seed(&self) -> Option<[u8; 32]> {
        let b64 = self.0.strip_prefix(WHSK)?;
        base64::engine::general_purpose::STANDARD.decode(b64).ok()?.try_into().ok()
    }

    /// The public half of an Ed25519 private key, as the API shows it (`whpk_…`).
    pub fn ed25519_public_key(&self) -> Option<String> {
        let raw = ed25519_public_key(&self.ed25519_seed()?)?;
        Some(format!("{WHPK}{}", base64::engine::general_purpose::STANDARD.encode(raw)))
    }

    /// No secret: a webhook whose profile makes signing optional and that was given none. It is
    /// stored as nothing (see `SealedSecrets::is_unsigned`) and signs nothing.
    pub fn unsigned() -> Self {
        Self(String::new())
    }

    /// Whether this is [`Secret::unsigned`] (a parsed or generated secret is never empty).
    pub fn is_unsigned(&self) -> bool {
        self.0.is_empty()
    }

    /// Rebuilds a secret opened from the store (it was validated when it was stored).
    pub fn from_stored(bytes: Vec<u8>) -> Self {
        Self(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key of the seeds' `sha256=` scheme: the secret string's bytes, as shown.
    pub fn hex_scheme_key(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The HMAC key of Standard Webhooks: the base64-decoded part of a `whsec_` secret, or the
    /// string's bytes for any other secret.
    pub fn standard_scheme_key(&self) -> Vec<u8> {
        self.0
            .strip_prefix(WHSEC)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_else(|| self.0.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_shape() {
        let s = Secret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.standard_scheme_key().len(), 32);
        assert!(Secret::parse(s.expose(), "secret").is_ok());
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn user_secret_rules() {
        assert!(Secret::parse("optional-hmac-secret", "secret").is_ok());
        assert!(Secret::parse("short", "secret").is_err());
        assert!(Secret::parse("has a space in it!!", "secret").is_err());
        assert!(Secret::parse("whsec_notbase64!!!!!!!!", "secret").is_err());
    }
}
