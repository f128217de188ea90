//! The event-type catalogue and the patterns webhooks subscribe with.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// Event types every tenant has: sent by Tocsin itself.
pub const SYSTEM_EVENT_TYPES: &[(&str, &str)] = &[
    ("webhook.test", "A test delivery sent from the API or the dashboard"),
    ("webhook.failing", "A webhook's deliveries failed: its circuit opened, deliveries wait and are probed"),
    ("webhook.disabled", "A webhook was deactivated by the circuit breaker or a 410 Gone answer"),
];

/// 1–128 characters: letters, digits and `_ . - :`; starts with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventTypeName(String);

impl EventTypeName {
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw.as_bytes()[0].is_ascii_alphanumeric()
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'));
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(FieldError::new(
                field,
                format!("'{}' is not an event type name (letters, digits, '_', '.', '-', ':'; at most 128)", clip(raw)),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a webhook subscribes to: one event type, a family (`alert.*`), or everything (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventTypePattern {
    All,
    /// `family.*`: the prefix including its dot.
    Family(String),
    Exact(EventTypeName),
}

impl EventTypePattern {
    /// Parses a pattern and checks it names something in `catalogue`.
    pub fn parse<'a>(
        raw: &str,
        field: &str,
        mut catalogue: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<Self, FieldError> {
        if raw == "*" {
            return Ok(Self::All);
        }
        if let Some(family) = raw.strip_suffix(".*") {
            EventTypeName::parse(family, field)?;
            let prefix = format!("{family}.");
            if !catalogue.clone().any(|n| n.starts_with(&prefix)) {
                return Err(FieldError::new(field, format!("no event type in the catalogue matches '{}'", clip(raw))));
            }
            return Ok(Self::Family(prefix));
        }
        let name = EventTypeName::parse(raw, field)?;
        if !catalogue.any(|n| n == raw) {
            return Err(FieldError::new(field, format!("'{}' is not in the event-type catalogue", clip(raw))));
        }
        Ok(Self::Exact(name))
    }

    /// Rebuilds a pattern read from the store (checked when it was stored).
    pub fn from_stored(raw: &str) -> Self {
        if raw == "*" {
            Self::All
        } else if let Some(family) = raw.strip_suffix(".*") {
            Self::Family(format!("{family}."))
        } else {
            Self::Exact(EventTypeName(raw.to_string()))
        }
    }

    pub fn matches(&self, event: &str) -> bool {
        match self {
            Self::All => true,
            Self::Family(prefix) => event.starts_with(prefix.as_str()),
            Self::Exact(name) => name.as_str() == event,
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            Self::All => "*".into(),
            Self::Family(prefix) => format!("{prefix}*"),
            Self::Exact(name) => name.as_str().to_string(),
        }
    }
}

/// One entry of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventType {
    pub name: String,
    pub description: String,
    /// A JSON schema that published `data` must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// An example `data` object (used by test events and previews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Value>,
    /// How to present the event in chat and SIEM formats (title, severity, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation: Option<serde_json::Value>,
}

/// Shortens user input quoted back in an error message.
pub fn clip(raw: &str) -> String {
    if raw.chars().count() > 64 {
        raw.chars().take(64).collect::<String>() + "…"
    } else {
        raw.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAT: [&str; 3] = ["alert.created", "alert.resolved", "critical_finding"];

    #[test]
    fn patterns() {
        let p = |s| EventTypePattern::parse(s, "event_types[0]", CAT.iter().copied());
        assert_eq!(p("*").unwrap(), EventTypePattern::All);
        assert!(p("alert.*").unwrap().matches("alert.resolved"));
        assert!(!p("alert.*").unwrap().matches("alerts.x"));
        assert!(p("critical_finding").unwrap().matches("critical_finding"));
        assert!(p("scan.*").is_err());
        assert!(p("nope").is_err());
        assert!(p("bad name").is_err());
        assert_eq!(EventTypePattern::from_stored("alert.*").as_string(), "alert.*");
    }
}
