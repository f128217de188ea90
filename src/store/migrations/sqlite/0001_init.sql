-- Tocsin schema v1 (SQLite). Times are Unix milliseconds; ids are UUID text unless noted.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    role       TEXT NOT NULL,
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    digest     BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at);

CREATE TABLE event_types (
    tenant_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    schema       TEXT,
    example      TEXT,
    presentation TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    url                  TEXT NOT NULL,
    description          TEXT,
    event_types          TEXT NOT NULL,
    format               TEXT NOT NULL,
    retry_count          INTEGER NOT NULL,
    timeout_ms           INTEGER NOT NULL,
    retry_delays_ms      TEXT,
    headers              TEXT NOT NULL,
    is_active            INTEGER NOT NULL,
    failure_count        INTEGER NOT NULL DEFAULT 0,
    disabled_reason      TEXT,
    max_per_second       INTEGER,
    owner_email          TEXT,
    secret               BLOB NOT NULL,
    previous_secret      BLOB,
    previous_expires_at  INTEGER,
    secret_rotated_at    INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX webhooks_tenant_newest ON webhooks (tenant_id, created_at DESC, id DESC);

-- An accepted event: its data is kept as the exact bytes published.
CREATE TABLE events (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    event_ref      TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    ordering_key   TEXT,
    data           BLOB NOT NULL,
    delivery_count INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, event_ref)
);
CREATE INDEX events_created ON events (created_at);

-- One event to one webhook. seq orders deliveries of an ordering key.
CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    ordering_key    TEXT,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    leased_by       TEXT,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (webhook_id, next_attempt_at) WHERE state IN ('pending', 'leased');
-- Held deliveries wait for their webhook to be re-enabled.
CREATE INDEX deliveries_held ON deliveries (webhook_id) WHERE state = 'held';
-- Few indexes on purpose: every one is written by each claim and completion. Pruning and
-- deleting a webhook scan instead; they are rare.
CREATE INDEX deliveries_ordering ON deliveries (webhook_id, ordering_key, seq) WHERE ordering_key IS NOT NULL;
CREATE INDEX deliveries_event ON deliveries (event_id);

-- One HTTP (or syslog) exchange of a delivery. The request body is not stored: it is the
-- event's data rendered for the webhook at dispatched_at, and is rendered again to be shown.
CREATE TABLE attempts (
    id              TEXT PRIMARY KEY,
    delivery_seq    INTEGER NOT NULL,
    tenant_id       TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    event_ref       TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    format          TEXT NOT NULL,
    attempt_no      INTEGER NOT NULL,
    success         INTEGER NOT NULL,
    http_status     INTEGER,
    error           TEXT,
    response_ms     INTEGER NOT NULL,
    request_headers TEXT NOT NULL,
    dispatched_at   INTEGER NOT NULL,
    response_body   BLOB,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX attempts_webhook_newest ON attempts (webhook_id, created_at DESC);
CREATE INDEX attempts_tenant_newest ON attempts (tenant_id, created_at DESC);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    details   TEXT NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);
