//! How rendered deliveries reach their destination.

pub mod http;
pub mod ssrf;
pub mod syslog;

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

#[cfg(test)]
mod tests {
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
