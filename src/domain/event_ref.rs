//! What an `event_ref` may be: the product's own id for an event, 1 to 128 printable ASCII
//! characters. Checked where one is published and where one is looked up (`Store::get_event`): a
//! lookup by anything else finds nothing without a query (PostgreSQL refuses NUL in text).

/// 1 to 128 printable ASCII characters.
pub fn is_event_ref(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::is_event_ref;

    #[test]
    fn printable_ascii_up_to_128() {
        assert!(is_event_ref("quarantine-2026-12-07-0001"));
        assert!(is_event_ref(&"x".repeat(128)));
        for bad in ["", " lead", "a b", "nul\u{0}", "é", &"x".repeat(129)] {
            assert!(!is_event_ref(bad), "{bad:?}");
        }
    }
}
