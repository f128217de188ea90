//! How to present an event without code: a title, a severity, a summary, key/value facts and
//! CEF extension fields, derived from the event's data by its type's `presentation` settings,
//! with sensible defaults where those say nothing.
//!
//! ```toml
//! [event_type.presentation]
//! title = "Quarantined: {subject}"              # a template over the data's fields (dotted paths)
//! summary = "From {sender_email}, score {phish_score}"
//! severity = { field = "phish_score", scale = "score" }   # 0–100; or "cvss" (0–10); or named levels:
//! # severity = { field = "risk", map = { minor = "low", major = "high" } }
//! cef = { src = "device_ip", suser = "sender_email", act = "reason", cs1 = { label = "Scan", field = "scan_id" } }
//! ```

use serde_json::Value;

use super::EventView;

pub use crate::domain::severity::Severity;

/// What every non-JSON format shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Presented {
    pub title: String,
    pub severity: Severity,
    pub summary: Option<String>,
    /// The rest of the data as key/value pairs (nested values as compact JSON).
    pub facts: Vec<(String, String)>,
}

/// Looks up a dotted path (`sender.email`) in the data.
pub fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(data, |v, key| v.get(key))
}

/// A value as text: strings bare, everything else compact JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Fills `{path}` placeholders from the data; unknown paths become empty; `{{` is a brace.
pub fn fill_template(template: &str, data: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' | '}' if chars.peek() == Some(&c) => {
                chars.next();
                out.push(c);
            }
            '{' => {
                let mut path = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    path.push(c);
                }
                if closed {
                    out.push_str(&lookup(data, path.trim()).map(text_of).unwrap_or_default());
                } else {
                    // No closing brace: the rest is text (with its `{{` still read as braces).
                    out.push('{');
                    out.push_str(&fill_template(&path, data));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The severity of an event of this type with this data, by its type's `presentation` settings
/// (`config`): what `min_severity` and filters compare, and what every format shows.
pub fn severity_of(data: &Value, config: Option<&Value>) -> Severity {
    severity_from(config.and_then(Value::as_object).and_then(|c| c.get("severity")), data)
}

fn severity_from(config: Option<&Value>, data: &Value) -> Severity {
    if let Some(cfg) = config {
        let field = cfg.get("field").and_then(Value::as_str).unwrap_or("severity");
        let value = lookup(data, field);
        let scale = cfg.get("scale").and_then(Value::as_str);
        if let Some(v) = value {
            if let Some(map) = cfg.get("map").and_then(Value::as_object) {
                if let Some(level) = map.get(&text_of(v)).and_then(Value::as_str).and_then(Severity::from_name) {
                    return level;
                }
            }
            match (scale, v.as_f64()) {
                (Some("score"), Some(n)) => return Severity::from_score(n),
                (Some("cvss"), Some(n)) => return Severity::from_cvss(n),
                _ => {}
            }
            if let Some(level) = v.as_str().and_then(Severity::from_name) {
                return level;
            }
        }
        if let Some(level) = cfg.get("default").and_then(Value::as_str).and_then(Severity::from_name) {
            return level;
        }
    }
    for field in ["severity", "risk_level", "riskLevel", "level", "priority"] {
        if let Some(v) = data.get(field) {
            if let Some(level) = v.as_str().and_then(Severity::from_name) {
                return level;
            }
            if let Some(n) = v.as_f64() {
                return Severity::from_cvss(n);
            }
        }
    }
    if let Some(n) = data.get("cvss").and_then(Value::as_f64) {
        return Severity::from_cvss(n);
    }
    for field in ["phish_score", "score", "risk_score"] {
        if let Some(n) = data.get(field).and_then(Value::as_f64) {
            return Severity::from_score(n);
        }
    }
    Severity::Info
}

/// Derives the presentation of an event.
pub fn present(event_type: &str, data: &Value, config: Option<&Value>) -> Presented {
    let cfg = config.and_then(Value::as_object);
    let template = |key: &str| cfg.and_then(|c| c.get(key)).and_then(Value::as_str).map(|t| fill_template(t, data));
    let title = template("title")
        .filter(|t| !t.trim().is_empty())
        .or_else(|| {
            ["title", "subject", "name", "message"]
                .iter()
                .find_map(|f| data.get(*f).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from))
        })
        .unwrap_or_else(|| event_type.to_string());
    let severity = severity_from(cfg.and_then(|c| c.get("severity")), data);
    let summary = template("summary").filter(|s| !s.trim().is_empty());
    let facts = match data {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text_of(v))).collect(),
        other => vec![("data".into(), text_of(other))],
    };
    Presented { title, severity, summary, facts }
}

/// The event's data parsed, and its presentation: what every format but the bare envelope starts from.
pub fn present_raw(event: &EventView<'_>, config: Option<&Value>) -> (Value, Presented) {
    let data: Value = serde_json::from_slice(event.data).unwrap_or(Value::Null);
    let presented = present(event.event_type, &data, config);
    (data, presented)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults() {
        let p = present("email.quarantined", &json!({"subject": "Hi", "phish_score": 95}), None);
        assert_eq!(p.title, "Hi");
        assert_eq!(p.severity, Severity::Critical);
        let p = present("THREATS_NEW_THREAT", &json!({"riskLevel": "CRITICAL"}), None);
        assert_eq!((p.title.as_str(), p.severity), ("THREATS_NEW_THREAT", Severity::Critical));
        assert_eq!(present("x", &json!({"severity": "high"}), None).severity, Severity::High);
        assert_eq!(present("x", &json!({}), None).severity, Severity::Info);
    }

    #[test]
    fn configured() {
        let cfg = json!({
            "title": "Quarantined: {subject} ({sender.email})",
            "severity": {"field": "risk", "map": {"minor": "low", "major": "high"}},
        });
        let data = json!({"subject": "S", "sender": {"email": "a@b"}, "risk": "major", "scan_id": "42"});
        let p = present("e", &data, Some(&cfg));
        assert_eq!(p.title, "Quarantined: S (a@b)");
        assert_eq!(p.severity, Severity::High);
        assert_eq!(fill_template("{{literal}} {missing}!", &data), "{literal} !");
        assert_eq!(fill_template("{subject} } {unclosed {{x", &data), "S } {unclosed {x");
        assert_eq!(fill_template("é{subject}é{", &data), "éSé{");
        let score = json!({"severity": {"field": "phish_score", "scale": "score"}});
        assert_eq!(present("e", &json!({"phish_score": 72}), Some(&score)).severity, Severity::High);
    }
}
