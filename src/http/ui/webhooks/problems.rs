//! How the webhook form says what is wrong: each problem by the form field it belongs to, in
//! plain words, with the label the list at the top links by.

/// Which form field a problem belongs to (`event_types[2]` is the events fieldset's).
pub(super) fn field_of(field: &str) -> String {
    match ["event_types", "headers", "retry_delays_ms"].into_iter().find(|group| field.starts_with(group)) {
        Some(group) => group.into(),
        None => field.to_string(),
    }
}

/// A problem as a form says it beside its field: without the field's name in front, as a
/// sentence.
pub(super) fn human(field: &str, message: &str) -> String {
    let text = message.strip_prefix(&format!("{field}: ")).unwrap_or(message);
    // A sentence that begins with a name as written (`splunk_hec needs…`) keeps it.
    let first_word = text.split(' ').next().unwrap_or_default();
    if first_word.contains(['_', '.', '*']) {
        return if text.ends_with('.') { text.to_string() } else { format!("{text}.") };
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

/// The form's label of a field, for the list of problems at the top.
pub(super) fn label_of(field: &str) -> &'static str {
    match field {
        "name" => "Webhook name",
        "url" => "Endpoint URL",
        "format" => "Format",
        "description" => "Description",
        "event_types" => "Events",
        "secret" => "Signing secret (the HEC token for splunk_hec and splunk_hec_ocsf)",
        "signing_algorithm" => "Signature",
        "min_severity" => "Minimum severity",
        "filter" => "Filter expression",
        "retry_count" => "Retry attempts",
        "retry_delays_ms" => "Retry delay",
        "timeout_ms" => "Timeout",
        "max_per_second" => "Rate limit",
        "owner_email" => "Owner email",
        "headers" => "Custom headers",
        _ => "Webhook",
    }
}

/// The element a problem's link leads to.
pub(super) fn anchor_of(field: &str) -> &str {
    match field {
        "retry_delays_ms" => "retry_delay",
        f => f,
    }
}
