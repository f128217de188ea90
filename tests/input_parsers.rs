//! Every parser of user input, fed arbitrary text and numbers: it answers (no panic), and a
//! refusal names the field it was given.

#![allow(clippy::let_underscore_must_use, clippy::string_slice)] // tests: no untrusted input reaches them

use std::collections::BTreeMap;

use proptest::prelude::*;
use tocsin::destinations::parse_format;
use tocsin::domain::event_type::{EventTypeName, EventTypePattern};
use tocsin::domain::page::Page;
use tocsin::domain::secret::Secret;
use tocsin::domain::tenant::TenantId;
use tocsin::domain::token::Role;
use tocsin::domain::webhook::{self as wh, CustomHeaders, WebhookUrl};
use tocsin::service::deliveries::parse_window;
use tocsin::service::ServiceError;

proptest! {
    #[test]
    fn text_fields(s in ".*") {
        if let Err(e) = WebhookUrl::parse(&s, "url") { prop_assert_eq!(e.field, "url"); }
        if let Err(e) = Secret::parse(&s, "secret") { prop_assert_eq!(e.field, "secret"); }
        if let Err(e) = EventTypeName::parse(&s, "event") { prop_assert_eq!(e.field, "event"); }
        if let Err(e) = EventTypePattern::parse(&s, "event_types[0]", ["alert.created"].into_iter()) {
            prop_assert_eq!(e.field, "event_types[0]");
        }
        if let Err(e) = parse_format(&s, "format") { prop_assert_eq!(e.field, "format"); }
        if let Err(e) = wh::parse_name(&s) { prop_assert_eq!(e.field, "name"); }
        if let Err(e) = wh::parse_description(&s) { prop_assert_eq!(e.field, "description"); }
        if let Err(e) = wh::parse_owner_email(&s) { prop_assert_eq!(e.field, "owner_email"); }
        let _ = TenantId::parse(&s);
        let _ = Role::parse(&s);
        match parse_window(&s) {
            Ok(ms) => prop_assert!(ms > 0 && ms <= 90 * 86_400_000),
            Err(ServiceError::BadParameter(e)) => prop_assert_eq!(e.field, "window"),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn windows_of_any_count(n in any::<u64>(), unit in prop::sample::select(vec!['m', 'h', 'd', 'x'])) {
        let raw = format!("{n}{unit}");
        let per = match unit { 'm' => 60_000u128, 'h' => 3_600_000, 'd' => 86_400_000, _ => 0 };
        let fits = per > 0 && n > 0 && u128::from(n) * per <= 90 * 86_400_000;
        prop_assert_eq!(parse_window(&raw).is_ok(), fits, "{}", raw);
    }

    #[test]
    fn headers(name in ".{0,40}", value in ".{0,80}") {
        let raw = BTreeMap::from([(name.clone(), value)]);
        if let Err(e) = CustomHeaders::parse(&raw, "X-Tocsin", |_| false) {
            prop_assert!(e.field == "headers" || e.field == format!("headers.{name}"), "{}", e.field);
        }
    }

    #[test]
    fn numbers(n in any::<i64>(), m in any::<i64>(), delays in prop::collection::vec(any::<i64>(), 0..25)) {
        if let Err(e) = wh::parse_retry_count(n) { prop_assert_eq!(e.field, "retry_count"); }
        if let Err(e) = wh::parse_timeout_ms(n) { prop_assert_eq!(e.field, "timeout_ms"); }
        if let Err(e) = wh::parse_max_per_second(n) { prop_assert_eq!(e.field, "max_per_second"); }
        if let Err(e) = wh::parse_retry_delays(&delays) { prop_assert!(e.field.starts_with("retry_delays_ms"), "{}", e.field); }
        match Page::parse(Some(n), Some(m), 25) {
            Ok(p) => prop_assert!(p.offset() >= 0),
            Err(e) => prop_assert!(e.field == "page" || e.field == "per_page"),
        }
    }
}
