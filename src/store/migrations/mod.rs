//! Versioned schema migrations, one list per dialect, embedded in the binary.

pub const SQLITE: &[(i64, &str)] =
    &[(1, include_str!("sqlite/0001_init.sql")), (2, include_str!("sqlite/0002_ui_sessions.sql"))];
pub const POSTGRES: &[(i64, &str)] =
    &[(1, include_str!("postgres/0001_init.sql")), (2, include_str!("postgres/0002_ui_sessions.sql"))];
