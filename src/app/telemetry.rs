//! Structured logs with `tracing`, to stderr. Secrets are never passed to a log macro: the types
//! that hold them (`Secret`, `PlainToken`, `Cipher`) print as `***`.

use tracing_subscriber::EnvFilter;

pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}
