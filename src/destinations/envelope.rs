//! The JSON body of a delivery, in the shape of the tenant's profile: Tocsin's own envelope
//! `{"event", "emitted_at", "event_ref", "tenant_id", "data"}`, a product's (NetRecon's
//! `{"id", "event", "timestamp", "tenant_id", "data"}`, …), or the data alone (Gophish). `data`
//! is spliced in byte for byte as it was published (key order and number formatting preserved).

use super::EventView;
use crate::domain::time::{rfc3339_ms, write_rfc3339_secs};
use crate::profile::{BodyShape, BodyValue};

pub fn envelope(e: &EventView<'_>) -> Vec<u8> {
    let envelope = match e.shape {
        BodyShape::Data => return e.data.to_vec(),
        BodyShape::Envelope(envelope) => envelope,
    };
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = Vec::with_capacity(e.data.len() + 160);
    for (lead, value) in envelope.fields() {
        out.extend_from_slice(lead);
        match value {
            BodyValue::Event => out.extend_from_slice(quote(e.event_type).as_bytes()),
            BodyValue::EventRef => out.extend_from_slice(quote(e.event_ref).as_bytes()),
            BodyValue::EmittedAt => out.extend_from_slice(quote(&rfc3339_ms(e.emitted_at)).as_bytes()),
            BodyValue::EmittedAtSeconds => {
                out.push(b'"');
                write_rfc3339_secs(e.emitted_at, &mut out);
                out.push(b'"');
            }
            BodyValue::TenantId => out.extend_from_slice(quote(e.tenant_id).as_bytes()),
            BodyValue::Data => out.extend_from_slice(e.data),
        }
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Envelope;

    #[test]
    fn envelope_is_valid_json_with_data_verbatim() {
        let data = br#"{"z":1,"a":"\u00e9","n":1.50}"#;
        let body = envelope(&EventView {
            event_type: "email.quarantined",
            event_ref: "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            tenant_id: "default",
            data,
            emitted_at: 1_778_250_645_000,
            shape: BodyShape::tocsin(),
        });
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.ends_with(r#""data":{"z":1,"a":"\u00e9","n":1.50}}"#), "{text}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["event"], "email.quarantined");
        assert_eq!(v["emitted_at"], "2026-05-08T14:30:45Z");
        assert_eq!(v["tenant_id"], "default");
        assert_eq!(v.as_object().unwrap().keys().count(), 5);
    }

    #[test]
    fn a_profile_shapes_the_body_and_data_alone_is_data_verbatim() {
        let netrecon = BodyShape::Envelope(Envelope::new(&[
            ("id", BodyValue::EventRef),
            ("event", BodyValue::Event),
            ("timestamp", BodyValue::EmittedAtSeconds),
        ]));
        let data = br#"{"email":"a@b.c","time":"2020-01-20T17:33:55.553906Z"}"#;
        let view = |shape| EventView {
            event_type: "alert.created",
            event_ref: "r\"1",
            tenant_id: "t",
            data,
            emitted_at: 1_778_250_645_000,
            shape,
        };
        assert_eq!(
            String::from_utf8(envelope(&view(&netrecon))).unwrap(),
            r#"{"id":"r\"1","event":"alert.created","timestamp":"2026-05-08T14:30:45Z"}"#
        );
        assert_eq!(envelope(&view(&BodyShape::Data)), data.to_vec());
    }
}
