//! An event as an OCSF 1.4 object (the Open Cybersecurity Schema Framework, which security data
//! lakes and modern SIEMs ingest), shared by the formats that carry it (`ocsf`,
//! `splunk_hec_ocsf`): findings and alerts as Detection Finding (2004), as Vulnerability Finding
//! (2002) where a CVE is present, everything else as Base Event (0).
//!
//! The event type's `presentation.ocsf` chooses the mapping; each key is optional:
//!
//! ```toml
//! [event_type.presentation]
//! ocsf = { class = "vulnerability_finding", activity = "create", status = "new", uid = "finding_id", cve = "cve_id", cwe = "cwe", types = ["Pentest"] }
//! ```
//!
//! Without it, the class follows the data and the name: a CVE makes a Vulnerability Finding; a
//! name that says finding, alert, threat, detection, anomaly, incident or quarantine, or a
//! severity of medium or above, makes a Detection Finding; anything else is a Base Event. What
//! has no place in the class (every field of the data that no mapping consumed) goes to
//! `unmapped`, so nothing published is lost on the way.

use serde_json::{json, Map, Value};

use crate::destinations::presentation::{lookup, present, text_of, Presented, Severity};
use crate::destinations::{EventView, RenderSettings};

/// The OCSF schema version the objects follow (`metadata.version`).
pub const OCSF_VERSION: &str = "1.4.0";

/// The OCSF classes Tocsin renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcsfClass {
    /// 0, category 0 (Uncategorized).
    BaseEvent,
    /// 2002, category 2 (Findings).
    VulnerabilityFinding,
    /// 2004, category 2 (Findings).
    DetectionFinding,
}

impl OcsfClass {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "base_event" => Some(Self::BaseEvent),
            "vulnerability_finding" => Some(Self::VulnerabilityFinding),
            "detection_finding" => Some(Self::DetectionFinding),
            _ => None,
        }
    }

    pub fn uid(self) -> u32 {
        match self {
            Self::BaseEvent => 0,
            Self::VulnerabilityFinding => 2002,
            Self::DetectionFinding => 2004,
        }
    }

    /// The class's name in the schema (`detection_finding`), as Splunk's sourcetype carries it.
    pub fn name(self) -> &'static str {
        match self {
            Self::BaseEvent => "base_event",
            Self::VulnerabilityFinding => "vulnerability_finding",
            Self::DetectionFinding => "detection_finding",
        }
    }

    fn caption(self) -> &'static str {
        match self {
            Self::BaseEvent => "Base Event",
            Self::VulnerabilityFinding => "Vulnerability Finding",
            Self::DetectionFinding => "Detection Finding",
        }
    }

    fn is_finding(self) -> bool {
        self != Self::BaseEvent
    }
}

/// An event as OCSF, with its presentation (what a frame around it shows: syslog's PRI, HEC's
/// indexed fields).
#[derive(Debug, Clone)]
pub struct Mapped {
    pub class: OcsfClass,
    pub presented: Presented,
    pub body: Value,
}

/// Words in an event type's name that make it a finding when its type maps nothing.
const FINDING_WORDS: &[&str] =
    &["finding", "alert", "threat", "detect", "anomal", "incident", "quarantin", "vulnerab", "rogue", "honeypot"];

/// Fields a CVE identifier is looked for in, when the mapping names none.
const CVE_FIELDS: &[&str] = &["cve", "cve_id", "cveId", "cve_ids", "cves"];

/// Fields that identify a finding across its updates, when the mapping names none.
const UID_FIELDS: &[&str] = &["finding_id", "alert_id", "threat_id", "id", "uid"];

/// Maps `event` by its type's presentation settings.
pub fn ocsf_event(event: &EventView<'_>, presentation: Option<&Value>, settings: &RenderSettings) -> Mapped {
    let data: Value = serde_json::from_slice(event.data).unwrap_or(Value::Null);
    let presented = present(event.event_type, &data, presentation);
    let config = presentation.and_then(|p| p.get("ocsf")).and_then(Value::as_object);
    let setting = |key: &str| config.and_then(|c| c.get(key)).and_then(Value::as_str);
    let mut consumed: Vec<&str> = Vec::new();

    let cves = cves_of(&data, setting("cve"), &mut consumed);
    let class = setting("class").and_then(OcsfClass::parse).unwrap_or_else(|| {
        if !cves.is_empty() {
            OcsfClass::VulnerabilityFinding
        } else if presented.severity >= Severity::Medium || FINDING_WORDS.iter().any(|w| names(event.event_type, w)) {
            OcsfClass::DetectionFinding
        } else {
            OcsfClass::BaseEvent
        }
    });
    let activity = activity_of(class, setting("activity"), event.event_type);
    let mut out = Map::new();
    out.insert("class_uid".into(), json!(class.uid()));
    out.insert("class_name".into(), json!(class.caption()));
    out.insert("category_uid".into(), json!(class.uid() / 1000));
    out.insert("category_name".into(), json!(if class.is_finding() { "Findings" } else { "Uncategorized" }));
    out.insert("activity_id".into(), json!(activity.0));
    out.insert("activity_name".into(), json!(activity.1));
    out.insert("type_uid".into(), json!(u64::from(class.uid()) * 100 + u64::from(activity.0)));
    out.insert("type_name".into(), json!(format!("{}: {}", class.caption(), activity.1)));
    out.insert("time".into(), json!(event.emitted_at));
    let (severity_id, severity) = severity_of(presented.severity);
    out.insert("severity_id".into(), json!(severity_id));
    out.insert("severity".into(), json!(severity));
    out.insert("message".into(), json!(presented.summary.clone().unwrap_or_else(|| presented.title.clone())));
    out.insert("metadata".into(), metadata(event, settings));
    if class.is_finding() {
        let status = status_of(setting("status"), activity.0);
        out.insert("status_id".into(), json!(status.0));
        out.insert("status".into(), json!(status.1));
        let uid = finding_uid(&data, setting("uid"), event.event_ref, &mut consumed);
        out.insert("finding_info".into(), finding_info(uid, &presented, config, event.event_type));
    }
    if class == OcsfClass::VulnerabilityFinding {
        let cwe = text_at(&data, setting("cwe").or(Some("cwe")), &mut consumed);
        out.insert("vulnerabilities".into(), vulnerabilities(&cves, cwe, &presented, severity));
    }
    if let Some(unmapped) = unmapped(&data, &consumed) {
        out.insert("unmapped".into(), unmapped);
    }
    Mapped { class, presented, body: Value::Object(out) }
}

/// Whether a word appears in an event type's name (`THREATS_NEW_THREAT`, `ids.alert`).
fn names(event_type: &str, word: &str) -> bool {
    event_type.to_ascii_lowercase().contains(word)
}

/// The activity (id, caption): findings Create 1, Update 2, Close 3; a base event Other 99.
fn activity_of(class: OcsfClass, configured: Option<&str>, event_type: &str) -> (u8, &'static str) {
    if !class.is_finding() {
        return (99, "Other");
    }
    let by_name = || {
        if ["resolved", "closed", "restored", "dismissed"].iter().any(|w| names(event_type, w)) {
            "close"
        } else if ["verified", "updated", "changed", "retest"].iter().any(|w| names(event_type, w)) {
            "update"
        } else {
            "create"
        }
    };
    match configured.unwrap_or_else(by_name) {
        "update" => (2, "Update"),
        "close" => (3, "Close"),
        _ => (1, "Create"),
    }
}

/// A finding's status (id, caption): as configured, else Resolved for a Close and New otherwise.
fn status_of(configured: Option<&str>, activity_id: u8) -> (u8, &'static str) {
    match configured {
        Some("in_progress") => (2, "In Progress"),
        Some("suppressed") => (3, "Suppressed"),
        Some("resolved") => (4, "Resolved"),
        Some("new") => (1, "New"),
        _ if activity_id == 3 => (4, "Resolved"),
        _ => (1, "New"),
    }
}

/// OCSF's severity_id 1–5 and its caption.
fn severity_of(severity: Severity) -> (u8, &'static str) {
    match severity {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

fn metadata(event: &EventView<'_>, settings: &RenderSettings) -> Value {
    json!({
        "version": OCSF_VERSION,
        "product": {
            "name": settings.cef_product,
            "vendor_name": settings.cef_vendor,
            "version": settings.cef_version,
        },
        "uid": event.event_ref,
        "event_code": event.event_type,
        "tenant_uid": event.tenant_id,
    })
}

fn finding_info(uid: String, presented: &Presented, config: Option<&Map<String, Value>>, event_type: &str) -> Value {
    let mut info = Map::new();
    info.insert("uid".into(), json!(uid));
    info.insert("title".into(), json!(presented.title));
    if let Some(summary) = &presented.summary {
        info.insert("desc".into(), json!(summary));
    }
    let types: Vec<String> = match config.and_then(|c| c.get("types")).and_then(Value::as_array) {
        Some(types) => types.iter().filter_map(Value::as_str).map(String::from).collect(),
        None => vec![event_type.to_string()],
    };
    info.insert("types".into(), json!(types));
    Value::Object(info)
}

fn vulnerabilities(cves: &[String], cwe: Option<String>, presented: &Presented, severity: &str) -> Value {
    let one = |cve: Option<&String>| {
        let mut v = Map::new();
        if let Some(cve) = cve {
            v.insert("cve".into(), json!({"uid": cve}));
        }
        if let Some(cwe) = &cwe {
            v.insert("cwe".into(), json!({"uid": cwe}));
        }
        v.insert("title".into(), json!(presented.title));
        if let Some(summary) = &presented.summary {
            v.insert("desc".into(), json!(summary));
        }
        v.insert("severity".into(), json!(severity));
        Value::Object(v)
    };
    if cves.is_empty() {
        json!([one(None)])
    } else {
        Value::Array(cves.iter().map(|c| one(Some(c))).collect())
    }
}

/// The CVE identifiers in the data: the configured field, else the usual ones; a string or a
/// list of strings that look like `CVE-YYYY-NNNN…`.
fn cves_of<'a>(data: &Value, configured: Option<&'a str>, consumed: &mut Vec<&'a str>) -> Vec<String> {
    let fields: Vec<&'a str> = match configured {
        Some(field) => vec![field],
        None => CVE_FIELDS.to_vec(),
    };
    for field in fields {
        let Some(value) = lookup(data, field) else { continue };
        let found: Vec<String> = match value {
            Value::Array(items) => {
                items.iter().filter_map(Value::as_str).filter(|s| is_cve(s)).map(String::from).collect()
            }
            Value::String(s) if is_cve(s) => vec![s.clone()],
            _ => Vec::new(),
        };
        if !found.is_empty() {
            consumed.push(field);
            return found;
        }
    }
    Vec::new()
}

fn is_cve(s: &str) -> bool {
    let mut parts = s.split('-');
    parts.next().is_some_and(|p| p.eq_ignore_ascii_case("cve"))
        && parts.next().is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_some_and(|n| n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none()
}

/// What identifies the finding: the configured field, else the usual ones, else the event_ref.
fn finding_uid<'a>(data: &Value, configured: Option<&'a str>, event_ref: &str, consumed: &mut Vec<&'a str>) -> String {
    let fields: Vec<&'a str> = match configured {
        Some(field) => vec![field],
        None => UID_FIELDS.to_vec(),
    };
    fields.into_iter().find_map(|field| text_at(data, Some(field), consumed)).unwrap_or_else(|| event_ref.to_string())
}

/// A scalar field's text, marking the field consumed when it is there.
fn text_at<'a>(data: &Value, field: Option<&'a str>, consumed: &mut Vec<&'a str>) -> Option<String> {
    let field = field?;
    let value = lookup(data, field).filter(|v| !v.is_null() && !v.is_object() && !v.is_array())?;
    let text = text_of(value);
    if text.is_empty() {
        return None;
    }
    consumed.push(field);
    Some(text)
}

/// The data less what the mapping placed: an object's remaining fields (top level), or any other
/// value under `data`.
fn unmapped(data: &Value, consumed: &[&str]) -> Option<Value> {
    match data {
        Value::Object(map) => {
            let rest: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !consumed.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!rest.is_empty()).then_some(Value::Object(rest))
        }
        Value::Null => None,
        other => Some(json!({ "data": other })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::BodyShape;

    fn map(event_type: &str, data: Value, presentation: Option<Value>) -> Mapped {
        let raw = data.to_string();
        let view = EventView {
            event_type,
            event_ref: "ref-1",
            tenant_id: "acme",
            data: raw.as_bytes(),
            emitted_at: 1_778_250_645_123,
            shape: BodyShape::tocsin(),
        };
        ocsf_event(&view, presentation.as_ref(), &RenderSettings::default())
    }

    #[test]
    fn a_cve_makes_a_vulnerability_finding() {
        let m =
            map("cve.matched", json!({"cve": "CVE-2024-3094", "device_ip": "10.0.0.1", "severity": "critical"}), None);
        assert_eq!(m.class, OcsfClass::VulnerabilityFinding);
        assert_eq!(m.body["type_uid"], 200_201);
        assert_eq!(m.body["vulnerabilities"][0]["cve"]["uid"], "CVE-2024-3094");
        assert_eq!(m.body["severity_id"], 5);
        assert_eq!(m.body["unmapped"], json!({"device_ip": "10.0.0.1", "severity": "critical"}));
        assert!(!is_cve("CVE-24-1") && !is_cve("CVE-2024-12a4") && is_cve("cve-2021-44228"));
    }

    #[test]
    fn names_and_severity_choose_the_class_and_activity() {
        let alert = map("alert.resolved", json!({"alert_id": "a-1", "severity": "low"}), None);
        assert_eq!(alert.class, OcsfClass::DetectionFinding);
        assert_eq!((alert.body["activity_id"].clone(), alert.body["status_id"].clone()), (json!(3), json!(4)));
        assert_eq!(alert.body["finding_info"]["uid"], "a-1");
        assert!(alert.body.get("unmapped").is_some_and(|u| u.get("alert_id").is_none()));
        let quiet = map("scan.started", json!({"scan_id": "s"}), None);
        assert_eq!((quiet.class, quiet.body["type_uid"].clone()), (OcsfClass::BaseEvent, json!(99)));
        assert!(quiet.body.get("finding_info").is_none());
        let configured = map(
            "scan.started",
            json!({"scan_id": "s"}),
            Some(json!({"ocsf": {"class": "detection_finding", "uid": "scan_id", "types": ["Scan"]}})),
        );
        assert_eq!(configured.body["finding_info"], json!({"uid": "s", "title": "scan.started", "types": ["Scan"]}));
        assert!(configured.body.get("unmapped").is_none());
    }
}
