//! A webhook's payload filter: a CEL expression (the Common Expression Language, as in
//! Kubernetes) over `event` (the event type), `severity` (`info` … `critical`), `tenant_id` and
//! `data`, checked at publish time. Parsed once, when the webhook is written or read; an
//! expression that cannot be evaluated for an event (a missing field, a type mismatch) does not
//! match it.

use std::sync::Arc;

use super::severity::Severity;
use super::text::is_free_text;
use super::FieldError;

/// Longest expression accepted.
const MAX_FILTER_CHARS: usize = 2000;

/// A parsed filter expression and its source.
#[derive(Clone)]
pub struct EventFilter {
    source: String,
    program: Arc<cel::Program>,
}

impl std::fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventFilter({:?})", self.source)
    }
}

impl PartialEq for EventFilter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A webhook's payload filters together: an event passes when it is at least `min_severity` and
/// `filter` accepts it (each when set).
pub struct PayloadFilter<'a> {
    pub min_severity: Option<Severity>,
    pub filter: Option<&'a EventFilter>,
}

impl PayloadFilter<'_> {
    pub fn passes(&self, severity: Severity, context: &FilterContext) -> bool {
        self.min_severity.is_none_or(|min| severity >= min) && self.filter.is_none_or(|f| f.matches(context))
    }
}

/// What a filter is evaluated over.
pub struct FilterInput<'a> {
    pub event: &'a str,
    pub severity: &'a str,
    pub tenant_id: &'a str,
    pub data: &'a serde_json::Value,
}

/// An event's variables, made once for every filter that checks it: building CEL's context (its
/// functions, the data converted to CEL values) costs more than evaluating an expression.
pub struct FilterContext(Option<cel::Context<'static, 'static>>);

impl FilterContext {
    pub fn new(input: &FilterInput<'_>) -> Self {
        // CEL's standard library is built once: building it per event was most of the cost.
        static STDLIB: std::sync::LazyLock<Arc<cel::Env>> = std::sync::LazyLock::new(|| Arc::new(cel::Env::stdlib()));
        let mut context = cel::Context::with_env(STDLIB.clone());
        let added = context.add_variable("event", input.event.to_string()).is_ok()
            && context.add_variable("severity", input.severity.to_string()).is_ok()
            && context.add_variable("tenant_id", input.tenant_id.to_string()).is_ok()
            && context.add_variable("data", input.data.clone()).is_ok();
        Self(added.then_some(context))
    }
}

impl EventFilter {
    /// Parses `raw`; a syntax error names the line and column (`1:10`) and shows where.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let source = raw.trim();
        if source.is_empty() || source.chars().count() > MAX_FILTER_CHARS || !is_free_text(source) {
            return Err(FieldError::new(
                field,
                format!(
                    "must be a CEL expression of 1 to {MAX_FILTER_CHARS} characters, without control characters \
                     other than line breaks and tabs"
                ),
            ));
        }
        // The parser reports positions in its own words ("<input>:1:10: Syntax error: …").
        let program = cel::Program::compile(source).map_err(|e| {
            let text = e.to_string();
            let text = text.trim_start_matches("ERROR: ").replace("<input>:", "at ");
            FieldError::new(field, format!("not a valid CEL expression: {}", text.lines().next().unwrap_or_default()))
        })?;
        Ok(Self { source: source.to_string(), program: Arc::new(program) })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the event passes: only an evaluation to `true` does; an error does not.
    pub fn matches(&self, context: &FilterContext) -> bool {
        context.0.as_ref().is_some_and(|c| matches!(self.program.execute(c), Ok(cel::Value::Bool(true))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expr: &str, data: serde_json::Value) -> bool {
        let f = EventFilter::parse(expr, "filter").unwrap();
        f.matches(&FilterContext::new(&FilterInput {
            event: "email.quarantined",
            severity: "high",
            tenant_id: "acme",
            data: &data,
        }))
    }

    #[test]
    fn expressions_over_the_event_its_severity_and_data() {
        let data = serde_json::json!({"phish_score": 95, "source": "auto", "tags": ["vip"]});
        assert!(run(r#"data.phish_score >= 90 && data.source == "auto""#, data.clone()));
        assert!(!run(r#"data.phish_score >= 99"#, data.clone()));
        assert!(run(r#"event.startsWith("email.") && severity == "high" && tenant_id == "acme""#, data.clone()));
        assert!(run(r#""vip" in data.tags"#, data.clone()));
        // A missing field or a wrong type is no match, never an error.
        assert!(!run("data.nope > 3", data.clone()));
        assert!(!run("data.source > 3", data.clone()));
        assert!(!run("data.phish_score", data));
    }

    #[test]
    fn a_bad_expression_names_where() {
        let e = EventFilter::parse("data.x >=", "filter").unwrap_err();
        assert_eq!(e.field, "filter");
        assert!(e.message.contains("1:") && e.message.contains("not a valid CEL expression"), "{}", e.message);
        assert!(EventFilter::parse("   ", "filter").is_err());
    }
}
