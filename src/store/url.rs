//! Where the data lives: the one setting the store reads itself.

use std::path::PathBuf;

/// Where the data lives. Its `Debug` masks a PostgreSQL password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://…`).
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("a sqlite URL needs a file path, e.g. sqlite://./tocsin-data/tocsin.db".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            super::postgres::tls::parse(raw)?;
            return Ok(Self::Postgres(raw.to_string()));
        }
        Err("must start with sqlite:// or postgres://".into())
    }

    /// A form safe to log. A PostgreSQL URL is rebuilt from what the driver reads in it (user,
    /// hosts, database), so no password is in it wherever the URL held one (after the user, or as
    /// a `password=` parameter); its parameters are shown by name only.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres(url) => redact_postgres(url),
        }
    }
}

fn redact_postgres(url: &str) -> String {
    use tokio_postgres::config::Host;
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "postgres://(a URL the driver cannot read)".into();
    };
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        out.push_str(user);
        if config.get_password().is_some() {
            out.push_str(":***");
        }
        out.push('@');
    } else if config.get_password().is_some() {
        out.push_str(":***@");
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    out.push_str(&hosts.join(","));
    if let Some(db) = config.get_dbname() {
        out.push('/');
        out.push_str(db);
    }
    let names: Vec<&str> = url
        .split_once('?')
        .map(|(_, query)| query.split('&').filter_map(|p| p.split('=').next()).filter(|k| !k.is_empty()).collect())
        .unwrap_or_default();
    if !names.is_empty() {
        out.push('?');
        out.push_str(&names.iter().map(|k| format!("{k}=…")).collect::<Vec<_>>().join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn no_password_in_the_redacted_form() {
        for (url, shown) in [
            ("postgres://tocsin:hunter2@127.0.0.1/tocsin", "postgres://tocsin:***@127.0.0.1:5432/tocsin"),
            ("postgres://u:pa:ss@db:6543/x", "postgres://u:***@db:6543/x"),
            ("postgres://u@db/x?password=hunter2&sslmode=require", "postgres://u:***@db:5432/x?password=…&sslmode=…"),
            ("postgresql://db/x?user=u&password=hunter2", "postgres://u:***@db:5432/x?user=…&password=…"),
            ("postgres://nouser@127.0.0.1:1/x", "postgres://nouser@127.0.0.1:1/x"),
        ] {
            let redacted = DatabaseUrl::Postgres(url.into()).redacted();
            assert_eq!(redacted, shown, "{url}");
            assert!(!redacted.contains("hunter2") && !redacted.contains("ss@"), "{redacted}");
        }
    }
}
