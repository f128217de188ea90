//! Settings, resolved in one place with a fixed precedence:
//! command-line flags > `TOCSIN_*` environment variables > TOML file (`--config`) > defaults.
//!
//! Every value is parsed here, at the edge, so a bad one stops start-up with one line that
//! names the setting and where it came from, and the rest of the program sees typed values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::crypto::parse_master_key;
use crate::destinations::RenderSettings;
use crate::store::DatabaseUrl;

/// A setting that must never be printed: its `Debug` is `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive<T>(pub T);

impl<T> std::fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The values the TOML file may hold; the names match the `TOCSIN_*` variables in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub data_dir: Option<String>,
    pub admin_token: Option<String>,
    pub master_key: Option<String>,
    pub catalogue: Option<Vec<String>>,
    pub default_event_types: Option<Vec<String>>,
    pub secret_grace_secs: Option<u64>,
    pub log: Option<String>,
    pub header_prefix: Option<String>,
    pub retry_delays_ms: Option<Vec<u64>>,
    pub failure_threshold: Option<u32>,
    pub allow_destinations: Option<Vec<String>>,
    pub max_event_bytes: Option<usize>,
    pub retention_days: Option<u64>,
    pub workers: Option<usize>,
    pub webhook_concurrency: Option<usize>,
    pub extra_ca_file: Option<String>,
    pub shutdown_grace_secs: Option<u64>,
    pub lease_margin_secs: Option<u64>,
    pub smtp_url: Option<String>,
    pub smtp_from: Option<String>,
    pub cef_vendor: Option<String>,
    pub cef_product: Option<String>,
    pub syslog_facility: Option<u8>,
    pub syslog_hostname: Option<String>,
    pub syslog_udp_max: Option<usize>,
    pub splunk_index: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
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
    /// Event-type catalogue files (TOML), repeatable [env: TOCSIN_CATALOGUE, comma-separated]
    #[arg(long)]
    pub catalogue: Vec<String>,
    /// Log filter, e.g. info or tocsin=debug [env: TOCSIN_LOG] [default: info]
    #[arg(long)]
    pub log: Option<String>,
}

/// Fully resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: DatabaseUrl,
    pub data_dir: PathBuf,
    /// Seeds an admin token of the default tenant (for automation).
    pub admin_token: Option<Sensitive<String>>,
    /// The raw master key, when given; otherwise a key file in `data_dir` is used.
    pub master_key: Option<Sensitive<[u8; 32]>>,
    pub catalogue_files: Vec<PathBuf>,
    pub default_event_types: Vec<String>,
    /// How long a rotated-out secret keeps signing alongside the new one.
    pub secret_grace: Duration,
    pub log: String,
    /// Prefix of the service's own headers (`X-Tocsin-Signature`, …).
    pub header_prefix: String,
    /// The retry schedule: delay before retry n (the last entry repeats).
    pub retry_delays: Vec<Duration>,
    /// Consecutive failed attempts after which a webhook is deactivated.
    pub failure_threshold: u32,
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
    pub origin: &'static str,
    pub problem: String,
}

/// Where a raw value was found.
struct Raw {
    value: String,
    source: &'static str,
}

struct Resolver<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    /// flag > env > file, as raw text with its source.
    fn pick(&self, flag: Option<&String>, env: &str, file: Option<String>) -> Option<Raw> {
        if let Some(v) = flag {
            return Some(Raw { value: v.clone(), source: "command line" });
        }
        if let Some(v) = (self.env)(env) {
            return Some(Raw { value: v, source: "environment" });
        }
        file.map(|value| Raw { value, source: "config file" })
    }
}

fn parse_with<T>(
    raw: Option<Raw>,
    name: &str,
    default: impl FnOnce() -> T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default()),
        Some(raw) => parse(raw.value.trim()).map_err(|problem| ConfigError {
            name: name.to_string(),
            origin: raw.source,
            problem,
        }),
    }
}

/// A parser for a whole number within `lo..=hi`.
fn in_range<T>(lo: T, hi: T) -> impl FnOnce(&str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    move |s| match s.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!("'{s}' must be a whole number from {lo} to {hi}")),
    }
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn join<T: ToString>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

impl Settings {
    /// Resolves settings from the process environment.
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        Self::resolve(flags, &|name| std::env::var(name).ok())
    }

    /// Resolves settings; `env` looks a variable up (a parameter so tests need not touch the process).
    pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config_path = flags.config.clone().or_else(|| env("TOCSIN_CONFIG").map(PathBuf::from));
        let file = match &config_path {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let r = Resolver { env };

        let listen = parse_with(
            r.pick(flags.listen.as_ref(), "TOCSIN_LISTEN", file.listen),
            "TOCSIN_LISTEN",
            || SocketAddr::from(([127, 0, 0, 1], 8080)),
            |s| s.parse().map_err(|_| format!("'{s}' is not an address like 127.0.0.1:8080")),
        )?;
        let data_dir = parse_with(
            r.pick(flags.data_dir.as_ref(), "TOCSIN_DATA_DIR", file.data_dir),
            "TOCSIN_DATA_DIR",
            || PathBuf::from("./tocsin-data"),
            |s| {
                if s.is_empty() {
                    Err("must not be empty".into())
                } else {
                    Ok(PathBuf::from(s))
                }
            },
        )?;
        let database = parse_with(
            r.pick(flags.database_url.as_ref(), "TOCSIN_DATABASE_URL", file.database_url),
            "TOCSIN_DATABASE_URL",
            || DatabaseUrl::Sqlite(data_dir.join("tocsin.db")),
            DatabaseUrl::parse,
        )?;
        let admin_token = parse_with(
            r.pick(None, "TOCSIN_ADMIN_TOKEN", file.admin_token),
            "TOCSIN_ADMIN_TOKEN",
            || None,
            |s| {
                if s.len() < 24 || s.len() > 256 || !s.bytes().all(|b| b.is_ascii_graphic()) {
                    Err("must be 24 to 256 printable characters without spaces".into())
                } else {
                    Ok(Some(Sensitive(s.to_string())))
                }
            },
        )?;
        let master_key = parse_with(
            r.pick(None, "TOCSIN_MASTER_KEY", file.master_key),
            "TOCSIN_MASTER_KEY",
            || None,
            |s| parse_master_key(s).map(|k| Some(Sensitive(k))),
        )?;
        let catalogue_flag = (!flags.catalogue.is_empty()).then(|| flags.catalogue.join(","));
        let catalogue_files = parse_with(
            r.pick(catalogue_flag.as_ref(), "TOCSIN_CATALOGUE", file.catalogue.map(|c| c.join(","))),
            "TOCSIN_CATALOGUE",
            Vec::new,
            |s| Ok(list(s).into_iter().map(PathBuf::from).collect()),
        )?;
        let default_event_types = parse_with(
            r.pick(None, "TOCSIN_DEFAULT_EVENT_TYPES", file.default_event_types.map(|v| v.join(","))),
            "TOCSIN_DEFAULT_EVENT_TYPES",
            || vec!["*".to_string()],
            |s| {
                let v = list(s);
                if v.is_empty() {
                    Err("must list at least one event type or *".into())
                } else {
                    Ok(v)
                }
            },
        )?;
        let secret_grace = parse_with(
            r.pick(None, "TOCSIN_SECRET_GRACE_SECS", file.secret_grace_secs.map(|v| v.to_string())),
            "TOCSIN_SECRET_GRACE_SECS",
            || Duration::from_secs(24 * 3600),
            |s| s.parse::<u64>().map(Duration::from_secs).map_err(|_| format!("'{s}' is not a number of seconds")),
        )?;
        let log = parse_with(
            r.pick(flags.log.as_ref(), "TOCSIN_LOG", file.log),
            "TOCSIN_LOG",
            || "info".to_string(),
            |s| {
                tracing_subscriber::EnvFilter::try_new(s)
                    .map(|_| s.to_string())
                    .map_err(|e| format!("not a log filter: {e}"))
            },
        )?;
        let header_prefix = parse_with(
            r.pick(None, "TOCSIN_HEADER_PREFIX", file.header_prefix),
            "TOCSIN_HEADER_PREFIX",
            || "X-Tocsin".to_string(),
            |s| {
                if !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    Ok(s.to_string())
                } else {
                    Err("must be 1 to 40 letters, digits or dashes, like X-Tocsin".into())
                }
            },
        )?;
        let retry_delays = parse_with(
            r.pick(None, "TOCSIN_RETRY_DELAYS_MS", file.retry_delays_ms.map(|v| join(&v))),
            "TOCSIN_RETRY_DELAYS_MS",
            || [0u64, 30_000, 120_000, 600_000, 3_600_000].map(Duration::from_millis).to_vec(),
            |s| {
                let v = list(s)
                    .iter()
                    .map(|x| x.parse::<u64>().map(Duration::from_millis))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| "must be a comma-separated list of milliseconds".to_string())?;
                if v.is_empty() {
                    Err("must list at least one delay".into())
                } else {
                    Ok(v)
                }
            },
        )?;
        let failure_threshold = parse_with(
            r.pick(None, "TOCSIN_FAILURE_THRESHOLD", file.failure_threshold.map(|v| v.to_string())),
            "TOCSIN_FAILURE_THRESHOLD",
            || 5,
            in_range(1u32, 1_000_000),
        )?;
        let allow_destinations = parse_with(
            r.pick(None, "TOCSIN_ALLOW_DESTINATIONS", file.allow_destinations.map(|v| v.join(","))),
            "TOCSIN_ALLOW_DESTINATIONS",
            Vec::new,
            |s| {
                list(s)
                    .iter()
                    .map(|n| {
                        n.parse::<IpNet>()
                            .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                            .map_err(|_| format!("'{n}' is not a network like 10.0.0.0/8"))
                    })
                    .collect()
            },
        )?;
        let max_event_bytes = parse_with(
            r.pick(None, "TOCSIN_MAX_EVENT_BYTES", file.max_event_bytes.map(|v| v.to_string())),
            "TOCSIN_MAX_EVENT_BYTES",
            || 256 * 1024,
            in_range(1024usize, 16 * 1024 * 1024),
        )?;
        let retention = parse_with(
            r.pick(None, "TOCSIN_RETENTION_DAYS", file.retention_days.map(|v| v.to_string())),
            "TOCSIN_RETENTION_DAYS",
            || Duration::from_secs(30 * 86_400),
            |s| match s.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Duration::from_secs(n * 86_400)),
                _ => Err(format!("'{s}' is not a positive number of days")),
            },
        )?;
        let workers = parse_with(
            r.pick(None, "TOCSIN_WORKERS", file.workers.map(|v| v.to_string())),
            "TOCSIN_WORKERS",
            || 1024,
            in_range(1usize, 10_000),
        )?;
        let webhook_concurrency = parse_with(
            r.pick(None, "TOCSIN_WEBHOOK_CONCURRENCY", file.webhook_concurrency.map(|v| v.to_string())),
            "TOCSIN_WEBHOOK_CONCURRENCY",
            || 64,
            in_range(1usize, 10_000),
        )?;
        let extra_ca_file = parse_with(
            r.pick(None, "TOCSIN_EXTRA_CA_FILE", file.extra_ca_file),
            "TOCSIN_EXTRA_CA_FILE",
            || None,
            |s| {
                let p = PathBuf::from(s);
                if p.is_file() {
                    Ok(Some(p))
                } else {
                    Err(format!("{s} is not a readable file"))
                }
            },
        )?;
        let shutdown_grace = parse_with(
            r.pick(None, "TOCSIN_SHUTDOWN_GRACE_SECS", file.shutdown_grace_secs.map(|v| v.to_string())),
            "TOCSIN_SHUTDOWN_GRACE_SECS",
            || Duration::from_secs(15),
            |s| s.parse::<u64>().map(Duration::from_secs).map_err(|_| format!("'{s}' is not a number of seconds")),
        )?;
        let lease_margin = parse_with(
            r.pick(None, "TOCSIN_LEASE_MARGIN_SECS", file.lease_margin_secs.map(|v| v.to_string())),
            "TOCSIN_LEASE_MARGIN_SECS",
            || Duration::from_secs(30),
            |s| match s.parse::<u64>() {
                Ok(n) if (1..=3600).contains(&n) => Ok(Duration::from_secs(n)),
                _ => Err(format!("'{s}' must be between 1 and 3600 seconds")),
            },
        )?;
        let smtp_url = parse_with(
            r.pick(None, "TOCSIN_SMTP_URL", file.smtp_url),
            "TOCSIN_SMTP_URL",
            || None,
            |s| {
                if s.starts_with("smtp://") || s.starts_with("smtps://") {
                    Ok(Some(Sensitive(s.to_string())))
                } else {
                    Err("must start with smtp:// or smtps://".into())
                }
            },
        )?;
        let smtp_from = parse_with(
            r.pick(None, "TOCSIN_SMTP_FROM", file.smtp_from),
            "TOCSIN_SMTP_FROM",
            || "Tocsin <tocsin@localhost>".to_string(),
            |s| {
                s.parse::<lettre::message::Mailbox>()
                    .map(|_| s.to_string())
                    .map_err(|_| format!("'{s}' is not an email address"))
            },
        )?;
        let cef_field = |raw: Option<Raw>, name: &str| {
            parse_with(
                raw,
                name,
                || "Tocsin".to_string(),
                |s| {
                    if s.is_empty() || s.chars().count() > 63 || s.chars().any(char::is_control) {
                        Err("must be 1 to 63 characters".into())
                    } else {
                        Ok(s.to_string())
                    }
                },
            )
        };
        let cef_vendor = cef_field(r.pick(None, "TOCSIN_CEF_VENDOR", file.cef_vendor), "TOCSIN_CEF_VENDOR")?;
        let cef_product = cef_field(r.pick(None, "TOCSIN_CEF_PRODUCT", file.cef_product), "TOCSIN_CEF_PRODUCT")?;
        let syslog_facility = parse_with(
            r.pick(None, "TOCSIN_SYSLOG_FACILITY", file.syslog_facility.map(|v| v.to_string())),
            "TOCSIN_SYSLOG_FACILITY",
            || 16,
            in_range(0u8, 23),
        )?;
        let syslog_hostname = parse_with(
            r.pick(None, "TOCSIN_SYSLOG_HOSTNAME", file.syslog_hostname),
            "TOCSIN_SYSLOG_HOSTNAME",
            system_hostname,
            |s| {
                if !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic()) {
                    Ok(s.to_string())
                } else {
                    Err("must be 1 to 255 printable ASCII characters".into())
                }
            },
        )?;
        let syslog_udp_max = parse_with(
            r.pick(None, "TOCSIN_SYSLOG_UDP_MAX", file.syslog_udp_max.map(|v| v.to_string())),
            "TOCSIN_SYSLOG_UDP_MAX",
            || 2048,
            in_range(480usize, 65_000),
        )?;
        let splunk_index = parse_with(
            r.pick(None, "TOCSIN_SPLUNK_INDEX", file.splunk_index),
            "TOCSIN_SPLUNK_INDEX",
            || None,
            |s| {
                if !s.is_empty()
                    && s.len() <= 80
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    Ok(Some(s.to_string()))
                } else {
                    Err("must be an index name (letters, digits, _ and -)".into())
                }
            },
        )?;
        let file_path = |raw: Option<Raw>, name: &str| {
            parse_with(
                raw,
                name,
                || None,
                |s| {
                    let p = PathBuf::from(s);
                    if p.is_file() {
                        Ok(Some(p))
                    } else {
                        Err(format!("{s} is not a readable file"))
                    }
                },
            )
        };
        let cert =
            file_path(r.pick(None, "TOCSIN_CLIENT_CERT_FILE", file.client_cert_file), "TOCSIN_CLIENT_CERT_FILE")?;
        let key = file_path(r.pick(None, "TOCSIN_CLIENT_KEY_FILE", file.client_key_file), "TOCSIN_CLIENT_KEY_FILE")?;
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError {
                    name: "TOCSIN_CLIENT_CERT_FILE".into(),
                    origin: "environment",
                    problem: "TOCSIN_CLIENT_CERT_FILE and TOCSIN_CLIENT_KEY_FILE go together".into(),
                })
            }
        };
        let render = RenderSettings {
            cef_vendor,
            cef_product,
            cef_version: env!("CARGO_PKG_VERSION").to_string(),
            syslog_facility,
            hostname: syslog_hostname,
            splunk_index,
        };

        Ok(Settings {
            listen,
            database,
            data_dir,
            admin_token,
            master_key,
            catalogue_files,
            default_event_types,
            secret_grace,
            log,
            header_prefix,
            retry_delays,
            failure_threshold,
            allow_destinations,
            max_event_bytes,
            retention,
            workers,
            webhook_concurrency,
            extra_ca_file,
            shutdown_grace,
            lease_margin,
            smtp_url,
            smtp_from,
            render,
            syslog_udp_max,
            client_cert,
        })
    }

    /// Settings for tests and embedding: defaults with the data under `dir`.
    pub fn for_data_dir(dir: &Path) -> Self {
        let env = |name: &str| (name == "TOCSIN_DATA_DIR").then(|| dir.display().to_string());
        Self::resolve(&Flags::default(), &env).expect("defaults are valid")
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

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let err = |problem: String| ConfigError { name: "--config".into(), origin: "command line", problem };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| err(format!("{}: {}", path.display(), e.message())))
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
    fn postgres_password_is_redacted() {
        let url = DatabaseUrl::parse("postgres://tocsin:hunter2@127.0.0.1/tocsin").unwrap();
        assert_eq!(url.redacted(), "postgres://tocsin:***@127.0.0.1/tocsin");
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
}
