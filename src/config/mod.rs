//! Settings, resolved in one place with a fixed precedence:
//! command-line flags > `TOCSIN_*` environment variables > TOML file (`--config`) > defaults.
//!
//! Each setting is declared once ([`declared`]): its variable, flag and default. Every value is
//! parsed here, at the edge ([`parse`]), so a bad one stops start-up with one line that names the
//! setting and where it came from, and the rest of the program sees typed values.

pub mod declared;
pub mod parse;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::crypto::parse_master_key;
use crate::destinations::RenderSettings;
use crate::store::DatabaseUrl;
use declared::{Fallback, Setting};
use parse::*;

/// A setting that must never be printed: its `Debug` is `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive<T>(pub T);

impl<T> std::fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Values given on the command line (all optional: a missing one falls through to the next source).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// Address to listen on [env: TOCSIN_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<String>,
    /// sqlite://PATH or postgres://… [env: TOCSIN_DATABASE_URL] [default: sqlite://<data-dir>/tocsin.db]
    #[arg(long = "database", alias = "database-url")]
    pub database_url: Option<String>,
    /// Directory for the SQLite file and the master key file [env: TOCSIN_DATA_DIR] [default: ./tocsin-data]
    #[arg(long)]
    pub data_dir: Option<String>,
    /// TOML configuration file
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The deployment's default product profile: tocsin, phishnet, pentest, netrecon, selki, gophish, or one of TOCSIN_PROFILE_DIR [env: TOCSIN_PROFILE] [default: tocsin]
    #[arg(long)]
    pub profile: Option<String>,
    /// Event-type catalogue files (TOML), repeatable [env: TOCSIN_CATALOGUE, comma-separated]
    #[arg(long)]
    pub catalogue: Vec<String>,
    /// Log filter, e.g. info or tocsin=debug [env: TOCSIN_LOG] [default: info]
    #[arg(long)]
    pub log: Option<String>,
}

impl Flags {
    /// The value given for a setting's flag.
    fn given(&self, setting: &Setting) -> Option<String> {
        match setting.flag? {
            "--listen" => self.listen.clone(),
            "--database" => self.database_url.clone(),
            "--data-dir" => self.data_dir.clone(),
            "--log" => self.log.clone(),
            "--profile" => self.profile.clone(),
            "--catalogue" => (!self.catalogue.is_empty()).then(|| self.catalogue.join(",")),
            _ => None,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per event for people (no colour codes unless stderr is a terminal).
    Text,
    /// One JSON object per line, with the fields of the spans it happened in (`request_id`).
    Json,
}

/// Fully resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Time a client has to send a request's headers, and then its body.
    pub request_timeout: Duration,
    /// Connections open at once, at most.
    pub max_connections: usize,
    pub database: DatabaseUrl,
    pub data_dir: PathBuf,
    /// Seeds an admin token of the default tenant (for automation).
    pub admin_token: Option<Sensitive<String>>,
    /// The Bearer token `GET /metrics` asks for (open without one).
    pub metrics_token: Option<Sensitive<String>>,
    /// The raw master key, when given; otherwise a key file in `data_dir` is used.
    pub master_key: Option<Sensitive<[u8; 32]>>,
    /// The default product profile's name (checked against the loaded profiles at start-up).
    pub profile: String,
    /// A folder of more profiles (`<name>/profile.toml` + `catalogue.toml`).
    pub profile_dir: Option<PathBuf>,
    pub catalogue_files: Vec<PathBuf>,
    pub default_event_types: Vec<String>,
    /// How long a rotated-out secret keeps signing alongside the new one.
    pub secret_grace: Duration,
    /// Every new webhook's endpoint must prove it is its owner's before deliveries flow.
    pub verify_endpoints: bool,
    pub log: String,
    /// How log lines are written: `text` for people, `json` (one object per line) for collectors.
    pub log_format: LogFormat,
    /// Prefix of the service's own headers (`X-Tocsin-Signature`, …).
    pub header_prefix: String,
    /// The retry schedule: delay before retry n (the last entry repeats).
    pub retry_delays: Vec<Duration>,
    /// Failed attempts in a row that open a webhook's circuit.
    pub failure_threshold: u32,
    /// The first cool-down of an open circuit (it doubles with each opening in a row, to 1 h).
    pub breaker_cooldown: Duration,
    /// A webhook failing this long without a single success is disabled.
    pub disable_after: Duration,
    /// Networks that destinations may resolve to although the SSRF guard refuses them by default.
    pub allow_destinations: Vec<IpNet>,
    /// Largest accepted `data` object of an event, in bytes.
    pub max_event_bytes: usize,
    /// Delivery history older than this is pruned.
    pub retention: Duration,
    /// Number of concurrent delivery attempts of this process.
    pub workers: usize,
    /// Concurrent attempts to one webhook, at most.
    pub webhook_concurrency: usize,
    /// Extra PEM root certificates for destinations (on-premises CAs).
    pub extra_ca_file: Option<PathBuf>,
    /// How long attempts in flight may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// A lease lasts the attempt's timeout plus this; then a crashed process's work is claimed again.
    pub lease_margin: Duration,
    /// Where breaker emails go out (`smtp://…`); none when unset.
    pub smtp_url: Option<Sensitive<String>>,
    pub smtp_from: String,
    /// CEF vendor/product, syslog facility and hostname, Splunk index.
    pub render: RenderSettings,
    /// Largest syslog UDP datagram.
    pub syslog_udp_max: usize,
    /// Client certificate and key (PEM files) for TLS destinations that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// A setting that could not be parsed: names it and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name} (from {origin}): {problem}")]
pub struct ConfigError {
    pub name: String,
    pub origin: String,
    pub problem: String,
}

/// Where a raw value was found.
struct Raw {
    value: String,
    origin: String,
}

/// Reads declared settings from the sources in order of precedence.
struct Resolver<'a> {
    flags: &'a Flags,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: toml::Table,
    /// How errors name the file: `config file <path>`.
    file_origin: String,
}

impl Resolver<'_> {
    /// flag > env > file, as raw text with its origin.
    fn given(&self, s: &Setting) -> Option<Raw> {
        if let Some(value) = self.flags.given(s) {
            return Some(Raw { value, origin: "command line".into() });
        }
        if let Some(value) = (self.env)(s.env) {
            return Some(Raw { value, origin: "environment".into() });
        }
        self.file.get(&s.file_key()).map(|v| Raw { value: file_text(v), origin: self.file_origin.clone() })
    }

    fn parse_raw<T>(raw: Raw, s: &Setting, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        parse(raw.value.trim()).map_err(|problem| ConfigError { name: s.env.to_string(), origin: raw.origin, problem })
    }

    /// A setting with a default value: the given text, or the default, through `parse`.
    fn value<T>(&self, s: &Setting, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        let raw = match (self.given(s), s.default) {
            (Some(raw), _) => raw,
            (None, Fallback::Value(text)) => Raw { value: text.to_string(), origin: "default".into() },
            (None, _) => {
                return Err(ConfigError {
                    name: s.env.to_string(),
                    origin: "default".into(),
                    problem: "must be set".into(),
                })
            }
        };
        Self::parse_raw(raw, s, parse)
    }

    /// A setting without a default value: `None` when nothing gives it.
    fn optional<T>(
        &self,
        s: &Setting,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.given(s).map(|raw| Self::parse_raw(raw, s, parse)).transpose()
    }
}

/// A TOML value as the text an environment variable would hold (lists comma-separated).
fn file_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(file_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

impl Settings {
    /// Loads the product profiles these settings name.
    pub fn load_profiles(&self) -> anyhow::Result<crate::profile::Profiles> {
        let sources = crate::profile::Sources {
            default: Some(self.profile.clone()),
            dir: self.profile_dir.clone(),
            catalogue_files: self.catalogue_files.clone(),
        };
        let fallbacks = crate::profile::Fallbacks {
            header_prefix: self.header_prefix.clone(),
            default_event_types: self.default_event_types.clone(),
            retry_schedule: self.retry_delays.clone(),
            failure_threshold: self.failure_threshold,
            disable_after: self.disable_after,
        };
        crate::profile::Profiles::load(&sources, &fallbacks)
    }

    /// Resolves settings from the process environment.
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        Self::resolve(flags, &|name| std::env::var(name).ok())
    }

    /// Resolves settings; `env` looks a variable up (a parameter so tests need not touch the process).
    pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config_path = flags.config.clone().or_else(|| env("TOCSIN_CONFIG").map(PathBuf::from));
        let file = match &config_path {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let file_origin = config_path.as_ref().map_or(String::new(), |p| format!("config file {}", p.display()));
        let r = Resolver { flags, env, file, file_origin };
        use declared::*;

        let listen =
            r.value(&LISTEN, |s| s.parse().map_err(|_| format!("'{s}' is not an address like 127.0.0.1:8080")))?;
        let data_dir =
            r.value(
                &DATA_DIR,
                |s| {
                    if s.is_empty() {
                        Err("must not be empty".to_string())
                    } else {
                        Ok(PathBuf::from(s))
                    }
                },
            )?;
        let database = r
            .optional(&DATABASE_URL, DatabaseUrl::parse)?
            .unwrap_or_else(|| DatabaseUrl::Sqlite(data_dir.join("tocsin.db")));
        // The PostgreSQL server's CA travels in the URL, as libpq's `sslrootcert`.
        let database = match (database, r.optional(&DATABASE_CA_FILE, readable_file)?) {
            (DatabaseUrl::Postgres(url), Some(ca)) if !url.contains("sslrootcert=") => {
                let joiner = if url.contains('?') { '&' } else { '?' };
                let encoded: String = ca
                    .display()
                    .to_string()
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                            (b as char).to_string()
                        }
                        other => format!("%{other:02X}"),
                    })
                    .collect();
                DatabaseUrl::Postgres(format!("{url}{joiner}sslrootcert={encoded}"))
            }
            (database, _) => database,
        };
        let admin_token = r.optional(&ADMIN_TOKEN, |s| token_text(24, 256)(s).map(Sensitive))?;
        let metrics_token = r.optional(&METRICS_TOKEN, |s| token_text(16, 256)(s).map(Sensitive))?;
        let master_key = r.optional(&MASTER_KEY, |s| parse_master_key(s).map(Sensitive))?;
        let catalogue_files =
            r.optional(&CATALOGUE, |s| Ok(list(s).into_iter().map(PathBuf::from).collect()))?.unwrap_or_default();
        let render = RenderSettings {
            cef_vendor: r.value(&CEF_VENDOR, label(63))?,
            cef_product: r.value(&CEF_PRODUCT, label(63))?,
            cef_version: env!("CARGO_PKG_VERSION").to_string(),
            syslog_facility: r.value(&SYSLOG_FACILITY, in_range(0u8, 23))?,
            hostname: r.optional(&SYSLOG_HOSTNAME, token_text(1, 255))?.unwrap_or_else(system_hostname),
            splunk_index: r.optional(&SPLUNK_INDEX, index_name)?,
        };
        let cert = r.optional(&CLIENT_CERT_FILE, readable_file)?;
        let key = r.optional(&CLIENT_KEY_FILE, readable_file)?;
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError {
                    name: CLIENT_CERT_FILE.env.into(),
                    origin: "environment".into(),
                    problem: "TOCSIN_CLIENT_CERT_FILE and TOCSIN_CLIENT_KEY_FILE go together".into(),
                })
            }
        };
        Ok(Settings {
            listen,
            request_timeout: r
                .value(&REQUEST_TIMEOUT, duration_text(Duration::from_secs(1), Duration::from_secs(600)))?,
            max_connections: r.value(&MAX_CONNECTIONS, in_range(16usize, 1_000_000))?,
            database,
            data_dir,
            admin_token,
            metrics_token,
            master_key,
            profile: r.value(&PROFILE, |s| {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
                ok.then(|| s.to_string()).ok_or_else(|| "must be a profile's name: a-z, 0-9, '-' or '_'".to_string())
            })?,
            profile_dir: r.optional(&PROFILE_DIR, |s| {
                let p = PathBuf::from(s);
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(format!("'{s}' is not a directory"))
                }
            })?,
            catalogue_files,
            default_event_types: r.value(&DEFAULT_EVENT_TYPES, non_empty_list)?,
            secret_grace: r
                .value(&SECRET_GRACE_SECS, duration_in(0, 30 * 86_400, Duration::from_secs(1), "seconds"))?,
            verify_endpoints: r.value(&VERIFY_ENDPOINTS, |s| match s {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err("must be true or false".to_string()),
            })?,
            log: r.value(&LOG, |s| {
                tracing_subscriber::EnvFilter::try_new(s)
                    .map(|_| s.to_string())
                    .map_err(|e| format!("not a log filter: {e}"))
            })?,
            log_format: r.value(&LOG_FORMAT, |s| match s {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("must be text or json".to_string()),
            })?,
            header_prefix: r.value(&HEADER_PREFIX, header_prefix)?,
            retry_delays: r.value(&RETRY_DELAYS_MS, delays_ms)?,
            failure_threshold: r.value(&FAILURE_THRESHOLD, in_range(1u32, 1_000_000))?,
            breaker_cooldown: r
                .value(&BREAKER_COOLDOWN, duration_text(Duration::from_millis(100), Duration::from_secs(3600)))?,
            disable_after: r
                .value(&DISABLE_AFTER, duration_text(Duration::from_secs(1), Duration::from_secs(365 * 86_400)))?,
            allow_destinations: r.optional(&ALLOW_DESTINATIONS, networks)?.unwrap_or_default(),
            max_event_bytes: r.value(&MAX_EVENT_BYTES, in_range(1024usize, 16 * 1024 * 1024))?,
            retention: r.value(&RETENTION_DAYS, duration_in(1, 36_500, Duration::from_secs(86_400), "days"))?,
            workers: r.value(&WORKERS, in_range(1usize, 10_000))?,
            webhook_concurrency: r.value(&WEBHOOK_CONCURRENCY, in_range(1usize, 10_000))?,
            extra_ca_file: r.optional(&EXTRA_CA_FILE, readable_file)?,
            shutdown_grace: r.value(&SHUTDOWN_GRACE_SECS, duration_in(0, 3600, Duration::from_secs(1), "seconds"))?,
            lease_margin: r.value(&LEASE_MARGIN_SECS, duration_in(1, 3600, Duration::from_secs(1), "seconds"))?,
            smtp_url: r.optional(&SMTP_URL, |s| {
                if s.starts_with("smtp://") || s.starts_with("smtps://") {
                    Ok(Sensitive(s.to_string()))
                } else {
                    Err("must start with smtp:// or smtps://".to_string())
                }
            })?,
            smtp_from: r.value(&SMTP_FROM, |s| {
                s.parse::<lettre::message::Mailbox>()
                    .map(|_| s.to_string())
                    .map_err(|_| format!("'{s}' is not an email address"))
            })?,
            render,
            syslog_udp_max: r.value(&SYSLOG_UDP_MAX, in_range(480usize, 65_000))?,
            client_cert,
        })
    }

    /// Settings for tests and embedding: defaults with the data under `dir`.
    pub fn for_data_dir(dir: &Path) -> Result<Self, ConfigError> {
        let env = |name: &str| (name == declared::DATA_DIR.env).then(|| dir.display().to_string());
        Self::resolve(&Flags::default(), &env)
    }
}

/// The machine's name, for syslog HOSTNAME and Splunk `host`.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "tocsin".into())
}

/// Reads the TOML file; every key in it must be a declared setting's.
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let err = |problem: String| ConfigError { name: "--config".into(), origin: "command line".into(), problem };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| err(format!("{}: {}", path.display(), e.message())))?;
    for key in table.keys() {
        if !declared::ALL.iter().any(|s| &s.file_key() == key) {
            return Err(err(format!("{}: unknown setting `{key}`", path.display())));
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(&Flags::default(), &env_of(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database, DatabaseUrl::Sqlite(PathBuf::from("./tocsin-data/tocsin.db")));
        assert_eq!(s.default_event_types, vec!["*"]);
        assert_eq!(s.retry_delays.len(), 5);
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:3000\"\nlog = \"debug\"\nfailure_threshold = 9\n").unwrap();
        let flags = Flags { config: Some(path), listen: Some("127.0.0.1:1000".into()), ..Default::default() };
        let s =
            Settings::resolve(&flags, &env_of(&[("TOCSIN_LISTEN", "127.0.0.1:2000"), ("TOCSIN_LOG", "warn")])).unwrap();
        assert_eq!(s.listen.port(), 1000);
        assert_eq!(s.log, "warn");
        assert_eq!(s.failure_threshold, 9);
    }

    #[test]
    fn bad_value_names_the_setting() {
        let err = Settings::resolve(&Flags::default(), &env_of(&[("TOCSIN_LISTEN", "nope")])).unwrap_err();
        assert!(err.to_string().contains("TOCSIN_LISTEN (from environment)"), "{err}");
        let err = Settings::resolve(&Flags::default(), &env_of(&[("TOCSIN_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("TOCSIN_DATABASE_URL"), "{err}");
        let err = Settings::resolve(&Flags::default(), &env_of(&[("TOCSIN_MASTER_KEY", "short")])).unwrap_err();
        assert!(err.to_string().contains("TOCSIN_MASTER_KEY"), "{err}");
        assert!(!err.to_string().contains("short"), "the key itself is never echoed");
    }

    #[test]
    fn unknown_file_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let flags = Flags { config: Some(path), ..Default::default() };
        let err = Settings::resolve(&flags, &env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn the_database_ca_file_joins_the_postgres_url_as_sslrootcert() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("my ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let ca_text = ca.display().to_string();
        let env = |name: &str| match name {
            "TOCSIN_DATABASE_URL" => Some("postgres://t@db.example.com/tocsin?sslmode=verify-full".to_string()),
            "TOCSIN_DATABASE_CA_FILE" => Some(ca_text.clone()),
            _ => None,
        };
        let DatabaseUrl::Postgres(url) = Settings::resolve(&Flags::default(), &env).unwrap().database else {
            panic!("PostgreSQL")
        };
        assert!(url.ends_with(&format!("&sslrootcert={}", ca.display().to_string().replace(' ', "%20"))), "{url}");
        let options = crate::store::postgres::tls::parse(&url).unwrap();
        assert_eq!(options.root_cert.as_deref(), Some(ca.as_path()));
    }

    #[test]
    fn postgres_password_is_redacted() {
        let url = DatabaseUrl::parse("postgres://tocsin:hunter2@127.0.0.1/tocsin").unwrap();
        assert_eq!(url.redacted(), "postgres://tocsin:***@127.0.0.1:5432/tocsin");
    }

    #[test]
    fn debug_of_settings_prints_no_secret() {
        let env = env_of(&[
            ("TOCSIN_ADMIN_TOKEN", "tsn_very_secret_admin_token_0123456789"),
            ("TOCSIN_MASTER_KEY", "abababababababababababababababababababababababababababababababab"),
            ("TOCSIN_DATABASE_URL", "postgres://tocsin:hunter2@127.0.0.1/tocsin"),
            ("TOCSIN_SMTP_URL", "smtp://mailer:mailpass@127.0.0.1:25"),
        ]);
        let printed = format!("{:?}", Settings::resolve(&Flags::default(), &env).unwrap());
        for secret in ["very_secret", "abab", "hunter2", "mailpass", "171, 171"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }

    #[test]
    fn out_of_range_durations_refuse_to_start_naming_the_setting() {
        for (name, value) in [
            ("TOCSIN_SHUTDOWN_GRACE_SECS", "18446744073709551615"),
            ("TOCSIN_SHUTDOWN_GRACE_SECS", "3601"),
            ("TOCSIN_RETENTION_DAYS", "106751991167301"),
            ("TOCSIN_SECRET_GRACE_SECS", "99999999999999"),
            ("TOCSIN_RETRY_DELAYS_MS", "0,18446744073709551615"),
            ("TOCSIN_LEASE_MARGIN_SECS", "0"),
        ] {
            let env = move |n: &str| (n == name).then(|| value.to_string());
            let err = Settings::resolve(&Flags::default(), &env).expect_err(value);
            assert_eq!(err.name, name, "{err}");
        }
    }

    #[test]
    fn every_declared_default_parses() {
        let s = Settings::resolve(&Flags::default(), &|_: &str| None).unwrap();
        assert_eq!(s.shutdown_grace, Duration::from_secs(15));
        assert_eq!(s.retention, Duration::from_secs(30 * 86_400));
        for setting in declared::ALL {
            assert!(setting.env.starts_with("TOCSIN_"), "{setting:?}");
        }
    }

    proptest::proptest! {
        /// Any text in any one setting: start-up either succeeds or names that setting; it never
        /// panics.
        #[test]
        fn any_value_of_any_setting_is_parsed_or_named(index in 0..declared::ALL.len(), value in ".*") {
            let name = declared::ALL[index].env;
            let given = value.clone();
            let env = move |n: &str| (n == name).then(|| given.clone());
            if let Err(e) = Settings::resolve(&Flags::default(), &env) {
                // The client certificate and key are checked as a pair.
                let pair = name == "TOCSIN_CLIENT_KEY_FILE" && e.name == "TOCSIN_CLIENT_CERT_FILE";
                proptest::prop_assert!(e.name == name || pair, "{} named for {}={:?}", e.name, name, value);
            }
        }
    }
}
