//! How rendered deliveries reach their destination.

pub mod http;
pub mod ssrf;
pub mod syslog;
