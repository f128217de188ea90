//! Text helpers: what free text may hold (the edge), truncating visibly on character boundaries
//! (every renderer), and an error with its causes said once (transports, the store, `listen`).

/// Text a person wrote (a description, a filter): any characters but control ones, other than
/// line breaks and tabs. NUL in particular: PostgreSQL cannot store it in a text column.
pub fn is_free_text(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// At most `max` characters; a cut string ends with `…` so the reader sees it was cut.
pub fn clip_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// At most `max` bytes, cut on a character boundary (never broken UTF-8).
pub fn clip_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    // `end` is a character boundary, so this never splits a character.
    s.get(..end).unwrap_or_default()
}

/// An error and its causes in one line, each said once: clients wrap the OS error in layers that
/// repeat it ("Connection refused (os error 111): Connection refused (os error 111)").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            // A cause that already says all its wrapper said replaces it.
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        source = err.source();
    }
    parts.join(": ")
}

/// Appends `s` as a JSON string: as it is when nothing in it needs escaping (header names never
/// do, nor most values; an event_ref may), else through serde_json.
pub fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text() {
        assert!(is_free_text("two lines\r\nand\ta tab, é, 💥"));
        for bad in ["a\u{0}b", "bell\u{7}", "esc\u{1b}[31m", "del\u{7f}", "c1\u{85}"] {
            assert!(!is_free_text(bad), "{bad:?}");
        }
    }

    #[test]
    fn clipping() {
        assert_eq!(clip_chars("héllo", 10), "héllo");
        assert_eq!(clip_chars("héllo", 3), "hé…");
        assert_eq!(clip_bytes("héllo", 2), "h");
        assert_eq!(clip_bytes("héllo", 3), "hé");
    }
}

#[cfg(test)]
mod error_chain_tests {
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(String, #[source] Option<Box<Layer>>);

    #[test]
    fn each_cause_is_said_once() {
        let os = Layer("Connection refused (os error 111)".into(), None);
        let io = Layer("Connection refused (os error 111)".into(), Some(Box::new(os)));
        let top = Layer("client error (Connect)".into(), Some(Box::new(io)));
        assert_eq!(super::error_chain(&top), "client error (Connect): Connection refused (os error 111)");
    }
}
