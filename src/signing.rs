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

/// `sha256=<hex>` over the raw body.
pub fn seed_signature(secret: &Secret, body: &[u8]) -> String {
    let mut m = mac(secret.hex_scheme_key());
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// `v1,<base64>` over `{msg_id}.{timestamp}.{body}`.
pub fn standard_signature(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    standard_signature_with_key(&secret.standard_scheme_key(), msg_id, timestamp, body)
}

pub fn standard_signature_with_key(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(key);
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()))
}

/// Checks a seed-style signature in constant time (for `tocsin listen` and tests).
pub fn verify_seed(secret: &Secret, body: &[u8], header: &str) -> bool {
    crate::crypto::constant_time_eq(seed_signature(secret, body).as_bytes(), header.as_bytes())
}

/// Checks a `webhook-signature` header (a space-separated list) in constant time.
pub fn verify_standard(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = standard_signature(secret, msg_id, timestamp, body);
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
    fn verification() {
        let s = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = standard_signature(&s, "id", 5, b"body");
        assert!(verify_standard(&s, "id", 5, b"body", &format!("v1,AAAA {sig}")));
        assert!(!verify_standard(&s, "id", 6, b"body", &sig));
        assert!(verify_seed(&s, b"x", &seed_signature(&s, b"x")));
        assert!(!verify_seed(&s, b"y", &seed_signature(&s, b"x")));
    }
}
