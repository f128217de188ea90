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

    /// A form safe to log: the password of a PostgreSQL URL is masked.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres(url) => match url.split_once('@') {
                Some((creds, host)) => match creds.rsplit_once(':') {
                    Some((user, _pw)) if !user.ends_with('/') => format!("{user}:***@{host}"),
                    _ => url.clone(),
                },
                None => url.clone(),
            },
        }
    }
}
