//! Structured logs with `tracing`, to stderr. Secrets are never passed to a log macro: the types
//! that hold them (`Secret`, `PlainToken`, `Cipher`) print as `***`.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Log writes that failed (stderr on a full disk, or a closed pipe), since start.
static LOST_LOG_WRITES: AtomicU64 = AtomicU64::new(0);

/// How many log writes failed since start.
pub fn lost_log_writes() -> u64 {
    LOST_LOG_WRITES.load(Ordering::Relaxed)
}

/// Stderr that never fails its caller: a log line that cannot be written is dropped and
/// counted. (The subscriber reports a failed write with `eprintln!`, which panics on a broken
/// stderr: the request that logged would be dropped, and start-up would exit 101.)
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::io::stderr().write_all(buf).is_err() {
            LOST_LOG_WRITES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush().ok();
        Ok(())
    }
}

/// Prints a line for the person at the terminal (`out`: stdout, else stderr); a closed or full
/// terminal loses the line instead of panicking.
pub fn say(out: bool, line: std::fmt::Arguments<'_>) {
    let written = if out { writeln!(std::io::stdout(), "{line}") } else { writeln!(std::io::stderr(), "{line}") };
    if written.is_err() {
        LOST_LOG_WRITES.fetch_add(1, Ordering::Relaxed);
    }
}

/// Logs to stderr with `filter` in `format`, and makes panics one log line each (message and
/// place, no backtrace): a handler's panic is answered 500 by the HTTP layer and must not flood
/// the log. Colour codes only when stderr is a terminal.
pub fn init(filter: &str, format: LogFormat) {
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
    // The PostgreSQL driver logs every statement's parameters at debug level: header values,
    // URLs, sealed secrets. They never reach the log, whatever the filter asks for.
    let filter = match "tokio_postgres=info".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| LossyStderr).with_target(false);
    // Already set (tests start several applications in one process): the first one stays.
    match format {
        LogFormat::Text => logs.with_ansi(terminal).try_init().ok(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).try_init().ok(),
    };
}
