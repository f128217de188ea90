//! The two signature schemes every delivery carries.
//!
//! - Seed style (PhishNet, NetRecon, Gophish, GitHub): `sha256=` + lowercase hex of
//!   HMAC-SHA256(secret string as shown, raw body). No timestamp is signed.
//! - Standard Webhooks: `v1,` + base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}"), where the key
//!   is the base64-decoded part of a `whsec_` secret. Re-signed on every attempt with that
//!   attempt's timestamp, so receivers can reject replays.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// A secret's two HMAC keys, set up once per webhook rather than per request: each setup hashes
/// two key blocks, and the Standard Webhooks key is first decoded from base64. For an Ed25519
/// private key (`whsk_…`), its key pair instead: deliveries then carry only the Standard
/// Webhooks `v1a` signature (a receiver holds no shared secret to check the others with).
#[derive(Clone)]
pub struct SigningKeys {
    seed: HmacSha256,
    standard: HmacSha256,
    ed25519: Option<std::sync::Arc<ring::signature::Ed25519KeyPair>>,
}

impl SigningKeys {
    pub fn new(secret: &Secret) -> Self {
        let ed25519 = secret
            .ed25519_seed()
            .and_then(|seed| ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).ok())
            .map(std::sync::Arc::new);
        Self { seed: mac(secret.hex_scheme_key()), standard: mac(&secret.standard_scheme_key()), ed25519 }
    }

    /// Whether these sign with Ed25519 (`v1a`) rather than HMAC.
    pub fn is_ed25519(&self) -> bool {
        self.ed25519.is_some()
    }
}

/// The length of one Standard Webhooks asymmetric signature: `v1a,` and 88 base64 characters.
pub const ED25519_SIGNATURE_LEN: usize = 4 + 88;

/// `v1a,<base64>`: Ed25519 over `{msg_id}.{timestamp}.{body}`, when `keys` are Ed25519.
pub fn ed25519_signature_bytes(
    keys: &SigningKeys,
    msg_id: &str,
    timestamp_digits: &[u8],
    body: &[u8],
) -> Option<[u8; ED25519_SIGNATURE_LEN]> {
    let pair = keys.ed25519.as_ref()?;
    let mut message = Vec::with_capacity(msg_id.len() + timestamp_digits.len() + body.len() + 2);
    message.extend_from_slice(msg_id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp_digits);
    message.push(b'.');
    message.extend_from_slice(body);
    let signature = pair.sign(&message);
    let mut out = [0u8; ED25519_SIGNATURE_LEN];
    out[..4].copy_from_slice(b"v1a,");
    base64::engine::general_purpose::STANDARD
        .encode_slice(signature.as_ref(), &mut out[4..])
        .expect("88 base64 characters for 64 bytes");
    Some(out)
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys(***)")
    }
}

/// `sha256=<hex>` over the raw body.
pub fn seed_signature(secret: &Secret, body: &[u8]) -> String {
    seed_signed(mac(secret.hex_scheme_key()), body)
}

/// [`seed_signature`] with keys set up beforehand.
pub fn seed_signature_keyed(keys: &SigningKeys, body: &[u8]) -> String {
    seed_signed(keys.seed.clone(), body)
}

fn seed_signed(m: HmacSha256, body: &[u8]) -> String {
    let mut out = String::with_capacity(SEED_SIGNATURE_LEN);
    out.push_str(std::str::from_utf8(&seed_encode(seed_mac(m, body))).expect("ASCII"));
    out
}

/// The length of a seed-style signature: `sha256=` and 64 hex digits.
pub const SEED_SIGNATURE_LEN: usize = 7 + 64;
/// The length of one Standard Webhooks signature: `v1,` and 44 base64 characters.
pub const STANDARD_SIGNATURE_LEN: usize = 3 + 44;

fn seed_mac(mut m: HmacSha256, body: &[u8]) -> [u8; 32] {
    m.update(body);
    m.finalize().into_bytes().into()
}

fn seed_encode(mac: [u8; 32]) -> [u8; SEED_SIGNATURE_LEN] {
    let mut out = [0u8; SEED_SIGNATURE_LEN];
    out[..7].copy_from_slice(b"sha256=");
    hex::encode_to_slice(mac, &mut out[7..]).expect("64 hex digits for 32 bytes");
    out
}

/// [`seed_signature_keyed`] as bytes, for writing straight into a request's header buffer.
pub fn seed_signature_bytes(keys: &SigningKeys, body: &[u8]) -> [u8; SEED_SIGNATURE_LEN] {
    seed_encode(seed_mac(keys.seed.clone(), body))
}

/// `v1,<base64>` over `{msg_id}.{timestamp}.{body}`.
pub fn standard_signature(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    standard_signed(mac(&secret.standard_scheme_key()), msg_id, timestamp, body)
}

/// [`standard_signature`] with keys set up beforehand.
pub fn standard_signature_keyed(keys: &SigningKeys, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    standard_signed(keys.standard.clone(), msg_id, timestamp, body)
}

fn standard_signed(m: HmacSha256, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let sig = standard_encode(standard_mac(m, msg_id, timestamp.to_string().as_bytes(), body));
    std::str::from_utf8(&sig).expect("ASCII").to_string()
}

fn standard_mac(mut m: HmacSha256, msg_id: &str, timestamp: &[u8], body: &[u8]) -> [u8; 32] {
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(timestamp);
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

fn standard_encode(mac: [u8; 32]) -> [u8; STANDARD_SIGNATURE_LEN] {
    let mut out = [0u8; STANDARD_SIGNATURE_LEN];
    out[..3].copy_from_slice(b"v1,");
    base64::engine::general_purpose::STANDARD
        .encode_slice(mac, &mut out[3..])
        .expect("44 base64 characters for 32 bytes");
    out
}

/// [`standard_signature_keyed`] as bytes, with the timestamp given as its decimal digits (the
/// caller has them already for the `webhook-timestamp` header).
pub fn standard_signature_bytes(
    keys: &SigningKeys,
    msg_id: &str,
    timestamp_digits: &[u8],
    body: &[u8],
) -> [u8; STANDARD_SIGNATURE_LEN] {
    standard_encode(standard_mac(keys.standard.clone(), msg_id, timestamp_digits, body))
}

/// Checks a seed-style signature in constant time (for `tocsin listen` and tests).
pub fn verify_seed(keys: &SigningKeys, body: &[u8], header: &str) -> bool {
    crate::crypto::constant_time_eq(seed_signature_keyed(keys, body).as_bytes(), header.as_bytes())
}

/// Checks a `webhook-signature` header (a space-separated list) in constant time.
pub fn verify_standard(keys: &SigningKeys, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = standard_signature_keyed(keys, msg_id, timestamp, body);
    header.split(' ').any(|sig| crate::crypto::constant_time_eq(sig.as_bytes(), expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::from_stored(s.as_bytes().to_vec())
    }

    #[test]
    fn github_vector() {
        assert_eq!(
            seed_signature(&secret("It's a Secret to Everybody"), b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn standard_webhooks_vectors() {
        assert_eq!(
            standard_signature(
                &secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            standard_signature(
                &secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn keys_set_up_beforehand_sign_the_same() {
        for raw in ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "It's a Secret to Everybody"] {
            let s = secret(raw);
            let keys = SigningKeys::new(&s);
            for _ in 0..2 {
                assert_eq!(seed_signature_keyed(&keys, b"body"), seed_signature(&s, b"body"));
                assert_eq!(standard_signature_keyed(&keys, "id", 5, b"body"), standard_signature(&s, "id", 5, b"body"));
                assert_eq!(&seed_signature_bytes(&keys, b"body")[..], seed_signature(&s, b"body").as_bytes());
                assert_eq!(
                    &standard_signature_bytes(&keys, "id", b"5", b"body")[..],
                    standard_signature(&s, "id", 5, b"body").as_bytes()
                );
            }
        }
        assert_eq!(
            format!("{:?}", SigningKeys::new(&secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))),
            "SigningKeys(***)"
        );
    }

    #[test]
    fn verification() {
        let s = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let keys = SigningKeys::new(&s);
        let sig = standard_signature(&s, "id", 5, b"body");
        assert!(verify_standard(&keys, "id", 5, b"body", &format!("v1,AAAA {sig}")));
        assert!(!verify_standard(&keys, "id", 6, b"body", &sig));
        assert!(verify_seed(&keys, b"x", &seed_signature(&s, b"x")));
        assert!(!verify_seed(&keys, b"y", &seed_signature(&s, b"x")));
    }
}
