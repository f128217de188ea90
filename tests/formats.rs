//! Every format on the example events of the five seed briefs (golden files), checked by
//! independent parsers and against the published limits; and property tests: any event data
//! renders to a valid message of every format.
//!
//! Regenerate the golden files after a deliberate change with `UPDATE_GOLDEN=1 cargo test --test formats`
//! and review the diff.

#![allow(clippy::let_underscore_must_use, clippy::string_slice)] // tests: no untrusted input reaches them

#[path = "support/ocsf.rs"]
mod ocsf;

use proptest::prelude::*;
use serde_json::{json, Value};
use tocsin::catalogue::Catalogue;
use tocsin::destinations::parse_format;
use tocsin::destinations::{render, EventView, RenderSettings};

const EMITTED_AT: i64 = 1_778_250_645_123; // 2026-05-08T14:30:45.123Z
const EVENT_REF: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

fn settings() -> RenderSettings {
    RenderSettings {
        cef_vendor: "Tocsin".into(),
        cef_product: "Tocsin".into(),
        cef_version: "1.0".into(),
        syslog_facility: 16,
        hostname: "soc-gw-1".into(),
        splunk_index: Some("security".into()),
    }
}

/// (file stem, event type) of the seed briefs' example events.
const SEEDS: &[(&str, &str)] = &[
    ("phishnet", "email.quarantined"),
    ("pentest", "critical_finding"),
    ("netrecon", "alert.created"),
    ("selki", "THREATS_NEW_THREAT"),
    ("gophish", "campaign.clicked_link"),
];

/// (name, format, over syslog)
const FORMATS: &[(&str, &str, bool)] = &[
    ("json", "json", false),
    ("slack", "slack", false),
    ("teams", "teams", false),
    ("cef", "cef", false),
    ("cef-syslog", "cef", true),
    ("syslog", "syslog", true),
    ("splunk_hec", "splunk_hec", false),
    ("ocsf", "ocsf", false),
    ("ocsf-syslog", "ocsf", true),
    ("splunk_hec_ocsf", "splunk_hec_ocsf", false),
];

fn render_to_string(
    format: &str,
    over_syslog: bool,
    event_type: &str,
    data: &Value,
    presentation: Option<&Value>,
) -> String {
    let raw = data.to_string();
    let r = render(
        parse_format(format, "format").expect("a registered format"),
        &EventView {
            event_type,
            event_ref: EVENT_REF,
            tenant_id: "acme",
            data: raw.as_bytes(),
            emitted_at: EMITTED_AT,
            shape: tocsin::profile::BodyShape::tocsin(),
        },
        presentation,
        &settings(),
        over_syslog,
    );
    String::from_utf8(r.body).expect("every format is UTF-8")
}

#[test]
fn golden_files_for_every_format_and_seed() {
    let catalogue = Catalogue::load(&[] as &[&std::path::Path]).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let mut mismatches = Vec::new();
    for (seed, event_type) in SEEDS {
        let et = catalogue.get(event_type).unwrap_or_else(|| panic!("{event_type} in the catalogue"));
        let data = et.example.clone().expect("an example payload");
        for (name, format, over_syslog) in FORMATS {
            let out = render_to_string(format, *over_syslog, event_type, &data, et.presentation.as_ref());
            check_valid(format, *over_syslog, event_type, &data, &out);
            let path = dir.join(format!("{seed}.{name}.txt"));
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &out).unwrap();
            } else {
                let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {}", path.display()));
                if expected != out {
                    mismatches.push(format!("{}:\n  expected {expected}\n  got      {out}", path.display()));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "golden mismatches:\n{}", mismatches.join("\n"));
}

/// Format-specific validity, by parsers that are not the renderers.
fn check_valid(format: &str, over_syslog: bool, event_type: &str, data: &Value, out: &str) {
    // Compare with the data as it reads back from its own text (float parsing is not exact).
    let data = &serde_json::from_str::<Value>(&data.to_string()).unwrap();
    match (format, over_syslog) {
        ("json", _) => {
            let v: Value = serde_json::from_str(out).unwrap();
            assert_eq!(v["data"], *data);
            assert_eq!(v["event"], event_type);
        }
        ("slack", _) => check_slack(out),
        ("teams", _) => check_teams(out),
        ("splunk_hec", _) => {
            let v: Value = serde_json::from_str(out).unwrap();
            assert!(v["time"].is_f64() || v["time"].is_i64());
            assert_eq!(v["source"], "tocsin");
            assert_eq!(v["sourcetype"], format!("tocsin:{event_type}"));
            assert_eq!(v["event"]["data"], *data);
        }
        ("cef", false) => {
            let cef = cef_parser::parse(out).unwrap_or_else(|e| panic!("CEF does not parse ({e}): {out}"));
            assert_eq!(cef.header[4], event_type);
            assert_eq!(cef.ext.get("externalId").map(String::as_str), Some(EVENT_REF));
            assert_eq!(cef.ext.get("rt").map(String::as_str), Some("1778250645123"));
            let sev: u8 = cef.header[6].parse().unwrap();
            assert!(sev <= 10);
        }
        ("ocsf", false) => check_ocsf(&serde_json::from_str(out).unwrap(), event_type, data),
        ("splunk_hec_ocsf", _) => {
            let v: Value = serde_json::from_str(out).unwrap();
            assert_eq!(v["source"], "tocsin");
            let class = v["event"]["class_uid"].as_u64().unwrap();
            let expected = match class {
                0 => "ocsf:base_event",
                2002 => "ocsf:vulnerability_finding",
                2004 => "ocsf:detection_finding",
                other => panic!("class {other}"),
            };
            assert_eq!(v["sourcetype"], expected);
            check_ocsf(&v["event"], event_type, data);
        }
        ("cef", true) | ("syslog", _) | ("ocsf", true) => {
            let m =
                syslog_rfc5424::parse_message(out).unwrap_or_else(|e| panic!("RFC 5424 parse failed ({e:?}): {out}"));
            assert_eq!(m.appname.as_deref(), Some("tocsin"));
            assert_eq!(m.hostname.as_deref(), Some("soc-gw-1"));
            assert_eq!(m.facility as i32, 16);
            let msgid = m.msgid.clone().unwrap_or_default();
            assert!(msgid.len() <= 32 && msgid.bytes().all(|b| (33..=126).contains(&b)), "{msgid}");
            assert_eq!(m.sd.find_tuple("tocsin@32473", "event_ref").map(String::as_str), Some(EVENT_REF));
            assert_eq!(m.sd.find_tuple("tocsin@32473", "tenant").map(String::as_str), Some("acme"));
            assert_eq!(m.sd.find_tuple("tocsin@32473", "event").map(String::as_str), Some(event_type));
            assert_eq!(m.timestamp, Some(1_778_250_645));
            if format == "cef" {
                assert!(m.msg.starts_with("CEF:0|"), "{}", m.msg);
                cef_parser::parse(&m.msg).unwrap();
            } else if format == "ocsf" {
                check_ocsf(&serde_json::from_str(&m.msg).unwrap(), event_type, data);
            } else {
                let v: Value = serde_json::from_str(&m.msg).unwrap();
                assert_eq!(v["data"], *data);
            }
        }
        (other, _) => panic!("no check for the format {other}"),
    }
}

/// What every OCSF rendering keeps of the event: its identity, and every field of the data either
/// mapped to its place or under `unmapped`.
fn check_ocsf(v: &Value, event_type: &str, data: &Value) {
    assert_eq!(v["metadata"]["version"], "1.4.0");
    assert_eq!(v["metadata"]["uid"], EVENT_REF);
    assert_eq!(v["metadata"]["event_code"], event_type);
    assert_eq!(v["metadata"]["tenant_uid"], "acme");
    assert_eq!(v["time"], EMITTED_AT);
    let class = v["class_uid"].as_u64().unwrap();
    assert_eq!(v["type_uid"].as_u64().unwrap(), class * 100 + v["activity_id"].as_u64().unwrap());
    assert!((1..=5).contains(&v["severity_id"].as_u64().unwrap()));
    let text = v.to_string();
    for (key, value) in data.as_object().into_iter().flatten() {
        // (Floats may not survive a second trip through text exactly: the key is what counts.)
        let kept = v["unmapped"].get(key).is_some()
            || value.as_str().is_some_and(|s| text.contains(&serde_json::to_string(s).unwrap()));
        assert!(kept, "{key} of {event_type} is neither mapped nor unmapped: {v}");
    }
}

/// Every event type of the five products' catalogues, with its example (or no data), as OCSF:
/// each validates as its class in the published schema, by an independent library.
#[test]
fn every_catalogue_event_is_valid_ocsf() {
    let catalogue = Catalogue::load(&[] as &[&std::path::Path]).unwrap();
    let mut events = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for et in catalogue.iter() {
        let data = et.example.clone().unwrap_or_else(|| json!({}));
        for over_syslog in [false, true] {
            let out = render_to_string("ocsf", over_syslog, et.name.as_str(), &data, et.presentation.as_ref());
            check_valid("ocsf", over_syslog, et.name.as_str(), &data, &out);
        }
        let out = render_to_string("ocsf", false, et.name.as_str(), &data, et.presentation.as_ref());
        let v: Value = serde_json::from_str(&out).unwrap();
        classes.insert(v["class_uid"].as_u64().unwrap());
        events.push(v);
    }
    assert!(events.len() >= 38, "{} event types", events.len());
    assert_eq!(classes.into_iter().collect::<Vec<_>>(), vec![0, 2002, 2004], "each class is exercised");
    // A CVE in any event makes a Vulnerability Finding with the CVE in place.
    let cve = json!({"cve": "CVE-2024-3094", "device_ip": "10.0.0.5", "severity": "critical"});
    let out = render_to_string("ocsf", false, "cve.matched", &cve, None);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["class_uid"].clone(), v["vulnerabilities"][0]["cve"]["uid"].clone()),
        (json!(2002), json!("CVE-2024-3094"))
    );
    events.push(v);
    if let Some(valid) = ocsf::all_valid(&events) {
        assert!(valid, "pydantic-ocsf rejected an event (its findings are printed above)");
    }
}

fn check_slack(out: &str) {
    let v: Value = serde_json::from_str(out).unwrap();
    assert!(v["text"].as_str().is_some_and(|t| !t.is_empty()), "text fallback");
    let blocks = v["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty() && blocks.len() <= 50, "at most 50 blocks");
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(b["text"]["type"], "plain_text");
                let t = b["text"]["text"].as_str().unwrap();
                assert!(!t.is_empty() && t.chars().count() <= 150, "header ≤ 150: {t}");
            }
            "section" => {
                if let Some(t) = b["text"]["text"].as_str() {
                    assert!(t.chars().count() <= 3000);
                }
                if let Some(fields) = b["fields"].as_array() {
                    assert!(!fields.is_empty() && fields.len() <= 10);
                    for f in fields {
                        let t = f["text"].as_str().unwrap();
                        assert!(!t.is_empty() && t.chars().count() <= 2000);
                    }
                }
                assert!(b.get("text").is_some() || b.get("fields").is_some());
            }
            "context" => {
                let elements = b["elements"].as_array().unwrap();
                assert!(!elements.is_empty() && elements.len() <= 10);
            }
            other => panic!("unexpected block {other}"),
        }
    }
}

fn check_teams(out: &str) {
    assert!(out.len() <= 28 * 1024, "Teams payloads stay under 28 KB: {}", out.len());
    let v: Value = serde_json::from_str(out).unwrap();
    assert_eq!(v["type"], "message");
    let a = &v["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &a["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
    for el in card["body"].as_array().unwrap() {
        match el["type"].as_str().unwrap() {
            "TextBlock" => assert!(el["text"].is_string()),
            "FactSet" => {
                for f in el["facts"].as_array().unwrap() {
                    assert!(f["title"].is_string() && f["value"].is_string(), "{f}");
                }
            }
            other => panic!("unexpected element {other}"),
        }
    }
}

/// A CEF parser written from the specification, independently of the renderer.
mod cef_parser {
    use std::collections::BTreeMap;

    pub struct Cef {
        pub header: Vec<String>,
        pub ext: BTreeMap<String, String>,
    }

    pub fn parse(line: &str) -> Result<Cef, String> {
        let rest = line.strip_prefix("CEF:").ok_or("no CEF: prefix")?;
        if line.contains('\n') || line.contains('\r') {
            return Err("raw line break".into());
        }
        // Seven header fields separated by unescaped pipes; `\|` and `\\` are escapes.
        let mut header = Vec::new();
        let mut cur = String::new();
        let mut chars = rest.chars();
        while header.len() < 7 {
            match chars.next().ok_or("header ends early")? {
                '\\' => match chars.next().ok_or("dangling backslash")? {
                    c @ ('|' | '\\') => cur.push(c),
                    c => return Err(format!("bad header escape \\{c}")),
                },
                '|' => header.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        if header[0] != "0" {
            return Err(format!("version {}", header[0]));
        }
        let ext_text: String = chars.collect();
        let mut ext = BTreeMap::new();
        let mut key = String::new();
        let mut value = String::new();
        let mut in_value = false;
        let mut it = ext_text.chars().peekable();
        while let Some(c) = it.next() {
            if !in_value {
                if c == '=' {
                    if key.is_empty() || !key.chars().all(|k| k.is_ascii_alphanumeric() || k == '_') {
                        return Err(format!("bad key '{key}'"));
                    }
                    in_value = true;
                } else {
                    key.push(c);
                }
                continue;
            }
            match c {
                '\\' => match it.next().ok_or("dangling backslash")? {
                    '\\' => value.push('\\'),
                    '=' => value.push('='),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    other => return Err(format!("bad extension escape \\{other}")),
                },
                '=' => return Err(format!("unescaped = in the value of {key}")),
                ' ' => {
                    // A space ends the value if a `key=` follows.
                    let ahead: String = it.clone().take_while(|c| *c != ' ' && *c != '=').collect();
                    let after = it.clone().nth(ahead.chars().count());
                    if !ahead.is_empty()
                        && after == Some('=')
                        && ahead.chars().all(|k| k.is_ascii_alphanumeric() || k == '_')
                    {
                        ext.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                        in_value = false;
                    } else {
                        value.push(' ');
                    }
                }
                c => value.push(c),
            }
        }
        if in_value {
            ext.insert(key, value);
        } else if !key.is_empty() {
            return Err(format!("trailing text '{key}'"));
        }
        Ok(Cef { header, ext })
    }
}

#[test]
fn cef_escaping_cases() {
    let data = json!({
        "subject": "a|b \\ c=d\nnext\r line é 漢字 🙂",
        "sender_email": "x=y@example.com",
    });
    let presentation = json!({"title": "{subject}", "cef": {"suser": "sender_email", "msg": "subject"}});
    let out = render_to_string("cef", false, "pipe|event", &data, Some(&presentation));
    let cef = cef_parser::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(cef.header[4], "pipe|event");
    assert_eq!(cef.header[5], "a|b \\ c=d next  line é 漢字 🙂", "line breaks are not allowed in the header");
    assert_eq!(cef.ext["msg"], "a|b \\ c=d\nnext\r line é 漢字 🙂");
    assert_eq!(cef.ext["suser"], "x=y@example.com");
    assert!(out.contains(r"msg=a|b \\ c\=d\nnext\r line"), "{out}");
}

#[test]
fn severity_maps_consistently_across_formats() {
    let data = json!({"title": "t", "severity": "critical"});
    let cef = render_to_string("cef", false, "alert.created", &data, None);
    assert_eq!(cef_parser::parse(&cef).unwrap().header[6], "10");
    let syslog = render_to_string("syslog", true, "alert.created", &data, None);
    assert!(syslog.starts_with("<130>1 "), "local0 (16) × 8 + critical (2): {syslog}");
    let slack: Value = serde_json::from_str(&render_to_string("slack", false, "alert.created", &data, None)).unwrap();
    assert!(slack["blocks"][1]["text"]["text"].as_str().unwrap().contains(":red_circle: *CRITICAL*"));
    let teams: Value = serde_json::from_str(&render_to_string("teams", false, "alert.created", &data, None)).unwrap();
    assert_eq!(teams["attachments"][0]["content"]["body"][0]["color"], "Attention");
    let low = json!({"severity": "low"});
    assert!(render_to_string("syslog", true, "alert.created", &low, None).starts_with("<133>1 "));
}

#[test]
fn big_events_stay_within_slack_and_teams_limits() {
    let mut data = serde_json::Map::new();
    for i in 0..600 {
        data.insert(format!("field_{i}"), json!("x".repeat(3000)));
    }
    data.insert("title".into(), json!("T".repeat(500)));
    let data = Value::Object(data);
    check_slack(&render_to_string("slack", false, "alert.created", &data, None));
    let teams = render_to_string("teams", false, "alert.created", &data, None);
    check_teams(&teams);
    assert!(teams.contains("more fields not shown"));
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".*".prop_map(Value::from),
        "[|=\\\\\n\r\"\\]\\[{} a-zé漢🙂]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(".{0,16}", arb_json(), 0..12).prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_data_renders_validly_in_every_format(data in arb_object(), title in ".{0,300}", event_suffix in "[a-z_]{1,20}") {
        let event_type = format!("prop.{event_suffix}");
        let presentation = json!({"title": title, "cef": {"msg": "msg", "suser": "user", "cs1": {"label": "L|=\\", "field": "x"}}});
        for (_, format, over_syslog) in FORMATS {
            for p in [None, Some(&presentation)] {
                let out = render_to_string(format, *over_syslog, &event_type, &data, p);
                check_valid(format, *over_syslog, &event_type, &data, &out);
            }
        }
    }
}

/// An event type nobody mapped: an independent CEF parser reads every field of its data back,
/// hostile characters included (scalars from labelled custom keys, the rest from `cs5` as JSON).
#[test]
fn cef_carries_all_of_an_unmapped_event() {
    let data = json!({
        "hostile": "a=b|c\\d\nnew line\r",
        "count": 42,
        "ratio": 0.75,
        "flag": true,
        "who": "é ünïcode",
        "extra_1": "one",
        "extra_2": 7,
        "extra_3": 8,
        "extra_4": 9,
        "nested": {"list": [1, 2, {"x": "=|\\"}]},
    });
    let out = render_to_string("cef", false, "tenant.custom_thing", &data, None);
    let cef = cef_parser::parse(&out).unwrap_or_else(|e| panic!("CEF does not parse ({e}): {out}"));
    let mut back = serde_json::Map::new();
    for (key, value) in &cef.ext {
        let Some(label) = cef.ext.get(&format!("{key}Label")) else { continue };
        if key.starts_with("cn") {
            back.insert(label.clone(), json!(value.parse::<i64>().unwrap()));
        } else if label == "data" {
            back.extend(serde_json::from_str::<serde_json::Map<String, Value>>(value).unwrap());
        } else if key.starts_with("cs") && key != "cs6" {
            back.insert(label.clone(), Value::String(value.clone()));
        }
    }
    for (name, original) in data.as_object().unwrap() {
        let got = back.get(name).unwrap_or_else(|| panic!("{name} is not in {out}"));
        let as_text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(as_text(got), as_text(original), "{name}");
    }
}
