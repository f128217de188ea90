//! Validated domain types. Input is parsed into these at the edge (API, CLI, config); the rest of
//! the program never sees an unchecked name, URL, header or secret. No I/O here.

pub mod event_ref;
pub mod event_type;
pub mod filter;
pub mod page;
pub mod secret;
pub mod severity;
pub mod tenant;
pub mod text;
pub mod time;
pub mod token;
pub mod webhook;

/// A value that failed validation: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}
