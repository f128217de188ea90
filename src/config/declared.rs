//! Every setting, declared once: its environment variable (the TOML file's key is the same name
//! in lower case without `TOCSIN_`), its command-line flag if it has one, and its default. The
//! resolver reads only what is declared here; a test checks the README's table against it.

/// One setting.
#[derive(Debug)]
pub struct Setting {
    /// `TOCSIN_…`
    pub env: &'static str,
    /// `--…`, for the few settings the command line takes.
    pub flag: Option<&'static str>,
    pub default: Fallback,
}

/// What a setting is when nothing gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// This text, parsed like any given value.
    Value(&'static str),
    /// Unset: the feature it enables is off.
    Unset,
    /// Worked out at start-up (from another setting, or the machine).
    Derived,
}

impl Setting {
    /// The key of this setting in the TOML file.
    pub fn file_key(&self) -> String {
        self.env.trim_start_matches("TOCSIN_").to_ascii_lowercase()
    }
}

macro_rules! declare {
    ($($name:ident = $env:literal $([$flag:literal])?, $default:expr;)+) => {
        $(pub const $name: Setting = Setting {
            env: $env,
            flag: declare!(@flag $($flag)?),
            default: $default,
        };)+

        /// Every declared setting.
        pub const ALL: &[Setting] = &[$($name),+];
    };
    (@flag $flag:literal) => { Some($flag) };
    (@flag) => { None };
}

use Fallback::{Derived, Unset, Value};

declare! {
    LISTEN = "TOCSIN_LISTEN" ["--listen"], Value("127.0.0.1:8080");
    REQUEST_TIMEOUT = "TOCSIN_REQUEST_TIMEOUT", Value("10s");
    MAX_CONNECTIONS = "TOCSIN_MAX_CONNECTIONS", Value("10000");
    DATABASE_URL = "TOCSIN_DATABASE_URL" ["--database"], Derived;
    DATA_DIR = "TOCSIN_DATA_DIR" ["--data-dir"], Value("./tocsin-data");
    DATABASE_CA_FILE = "TOCSIN_DATABASE_CA_FILE", Unset;
    ADMIN_TOKEN = "TOCSIN_ADMIN_TOKEN", Unset;
    METRICS_TOKEN = "TOCSIN_METRICS_TOKEN", Unset;
    MASTER_KEY = "TOCSIN_MASTER_KEY", Derived;
    PROFILE = "TOCSIN_PROFILE" ["--profile"], Value("tocsin");
    PROFILE_DIR = "TOCSIN_PROFILE_DIR", Unset;
    CATALOGUE = "TOCSIN_CATALOGUE" ["--catalogue"], Derived;
    DEFAULT_EVENT_TYPES = "TOCSIN_DEFAULT_EVENT_TYPES", Value("*");
    SECRET_GRACE_SECS = "TOCSIN_SECRET_GRACE_SECS", Value("86400");
    VERIFY_ENDPOINTS = "TOCSIN_VERIFY_ENDPOINTS", Value("false");
    LOG = "TOCSIN_LOG" ["--log"], Value("info");
    LOG_FORMAT = "TOCSIN_LOG_FORMAT", Value("text");
    HEADER_PREFIX = "TOCSIN_HEADER_PREFIX", Value("X-Tocsin");
    RETRY_DELAYS_MS = "TOCSIN_RETRY_DELAYS_MS", Value("0,30000,120000,600000,3600000");
    FAILURE_THRESHOLD = "TOCSIN_FAILURE_THRESHOLD", Value("5");
    BREAKER_COOLDOWN = "TOCSIN_BREAKER_COOLDOWN", Value("30s");
    DISABLE_AFTER = "TOCSIN_DISABLE_AFTER", Value("72h");
    ALLOW_DESTINATIONS = "TOCSIN_ALLOW_DESTINATIONS", Unset;
    MAX_EVENT_BYTES = "TOCSIN_MAX_EVENT_BYTES", Value("262144");
    RETENTION_DAYS = "TOCSIN_RETENTION_DAYS", Value("30");
    WORKERS = "TOCSIN_WORKERS", Value("1024");
    WEBHOOK_CONCURRENCY = "TOCSIN_WEBHOOK_CONCURRENCY", Value("64");
    LEASE_MARGIN_SECS = "TOCSIN_LEASE_MARGIN_SECS", Value("30");
    SHUTDOWN_GRACE_SECS = "TOCSIN_SHUTDOWN_GRACE_SECS", Value("15");
    SMTP_URL = "TOCSIN_SMTP_URL", Unset;
    SMTP_FROM = "TOCSIN_SMTP_FROM", Value("Tocsin <tocsin@localhost>");
    CEF_VENDOR = "TOCSIN_CEF_VENDOR", Value("Tocsin");
    CEF_PRODUCT = "TOCSIN_CEF_PRODUCT", Value("Tocsin");
    SYSLOG_FACILITY = "TOCSIN_SYSLOG_FACILITY", Value("16");
    SYSLOG_HOSTNAME = "TOCSIN_SYSLOG_HOSTNAME", Derived;
    SYSLOG_UDP_MAX = "TOCSIN_SYSLOG_UDP_MAX", Value("2048");
    SPLUNK_INDEX = "TOCSIN_SPLUNK_INDEX", Unset;
    CLIENT_CERT_FILE = "TOCSIN_CLIENT_CERT_FILE", Unset;
    CLIENT_KEY_FILE = "TOCSIN_CLIENT_KEY_FILE", Unset;
    EXTRA_CA_FILE = "TOCSIN_EXTRA_CA_FILE", Unset;
}
