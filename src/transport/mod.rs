//! How rendered deliveries reach their destination.

pub mod ssrf;
