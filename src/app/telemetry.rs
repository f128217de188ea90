//! Structured logs with `tracing`, to stderr. Secrets are never passed to a log macro: the types
//! that hold them (`Secret`, `PlainToken`, `Cipher`) print as `***`.

use tracing_subscriber::EnvFilter;

/// Logs to stderr with `filter`, and makes panics one log line each (message and place, no
/// backtrace): a handler's panic is answered 500 by the HTTP layer and must not flood the log.
pub fn init(filter: &str) {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let place = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(%message, %place, "panic");
    }));
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Already set (tests start several applications in one process): the first one stays.
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init().ok();
}
