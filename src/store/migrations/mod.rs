//! Versioned schema migrations, one list per dialect, embedded in the binary.

pub const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("sqlite/0001_init.sql")),
    (2, include_str!("sqlite/0002_ui_sessions.sql")),
    (3, include_str!("sqlite/0003_due_index_by_state.sql")),
    (4, include_str!("sqlite/0004_attempt_indexes_ascending.sql")),
];
pub const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("postgres/0001_init.sql")),
    (2, include_str!("postgres/0002_ui_sessions.sql")),
    (3, include_str!("postgres/0003_due_index_by_state.sql")),
    (4, include_str!("postgres/0004_attempt_indexes_ascending.sql")),
];
