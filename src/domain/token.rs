//! API tokens and roles.
//!
//! A token is `tsn_` followed by 43 URL-safe base64 characters (32 random bytes). The prefix makes
//! a leaked token recognizable to secret scanners; only its SHA-256 digest is stored.

use serde::{Deserialize, Serialize};

use super::FieldError;
use crate::crypto;

pub const TOKEN_PREFIX: &str = "tsn_";

/// What a token may do within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in the tenant.
    Admin,
    /// Reads webhooks, settings and delivery history; never secrets; changes nothing.
    Viewer,
    /// Publishes events only.
    Publisher,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "admin" => Ok(Self::Admin),
            "viewer" => Ok(Self::Viewer),
            "publisher" => Ok(Self::Publisher),
            _ => Err(FieldError::new("role", "must be one of admin, viewer, publisher")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
            Self::Publisher => "publisher",
        }
    }
}

/// A plaintext token, held only long enough to show it once.
pub struct PlainToken(String);

impl PlainToken {
    pub fn generate() -> Self {
        Self(format!("{TOKEN_PREFIX}{}", crypto::b64url(&crypto::random_bytes::<32>())))
    }

    /// A token supplied by the operator (`TOCSIN_ADMIN_TOKEN`).
    pub fn given(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> [u8; 32] {
        token_digest(&self.0)
    }

    /// The first characters, safe to list so people can tell tokens apart.
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(TOKEN_PREFIX.len() + 4).collect::<String>() + "…"
    }
}

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainToken(***)")
    }
}

/// The stored form of a presented token.
pub fn token_digest(raw: &str) -> [u8; 32] {
    crypto::sha256(raw.as_bytes())
}
