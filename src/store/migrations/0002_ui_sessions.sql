-- Dashboard sessions: a signed-in API token, by the SHA-256 of the session cookie.
CREATE TABLE ui_sessions (
    digest     BYTEA PRIMARY KEY,
    token_id   TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);
