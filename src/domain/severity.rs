//! How severe an event is, on one scale every format maps from (derived per event type by
//! `destinations::presentation`), so a "high" is high everywhere, in a filter as in a SIEM.

use super::FieldError;

/// One scale every format maps from, so a "high" is high everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// A level as a webhook's `min_severity` names it.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        match raw {
            "info" => Ok(Self::Info),
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            "critical" => Ok(Self::Critical),
            _ => Err(FieldError::new(field, "must be info, low, medium, high or critical")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// A named level, as the seeds write them (`high`, `CRITICAL`, `Very-High`, `warning`…).
    pub fn from_name(raw: &str) -> Option<Self> {
        Some(match raw.trim().to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
            "info" | "informational" | "none" | "debug" | "notice" => Self::Info,
            "low" | "minor" => Self::Low,
            "medium" | "moderate" | "warning" | "warn" => Self::Medium,
            "high" | "major" | "error" | "severe" => Self::High,
            "critical" | "very-high" | "veryhigh" | "crit" | "emergency" | "alert" | "fatal" => Self::Critical,
            _ => return None,
        })
    }

    /// A 0–100 score (e.g. `phish_score`).
    pub fn from_score(score: f64) -> Self {
        match score {
            s if s >= 90.0 => Self::Critical,
            s if s >= 70.0 => Self::High,
            s if s >= 40.0 => Self::Medium,
            s if s > 0.0 => Self::Low,
            _ => Self::Info,
        }
    }

    /// A 0–10 score (CVSS, CEF).
    pub fn from_cvss(score: f64) -> Self {
        match score {
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            s if s > 0.0 => Self::Low,
            _ => Self::Info,
        }
    }
}
