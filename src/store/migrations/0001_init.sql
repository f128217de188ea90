-- Tocsin schema v1. Times are Unix milliseconds; ids are UUID text unless noted. Written in
-- PostgreSQL's SQL; SQLite runs it with its names for three types (see mod.rs).
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
    digest     BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at);

CREATE TABLE event_types (
    tenant_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    schema       TEXT,
    example      TEXT,
    presentation TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
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
    retry_count          BIGINT NOT NULL,
    timeout_ms           BIGINT NOT NULL,
    retry_delays_ms      TEXT,
    headers              TEXT NOT NULL,
    is_active            BIGINT NOT NULL,
    failure_count        BIGINT NOT NULL DEFAULT 0,
    disabled_reason      TEXT,
    max_per_second       BIGINT,
    owner_email          TEXT,
    secret               BYTEA NOT NULL,
    previous_secret      BYTEA,
    previous_expires_at  BIGINT,
    secret_rotated_at    BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant_newest ON webhooks (tenant_id, created_at DESC, id DESC);

-- An accepted event: its data is kept as the exact bytes published.
CREATE TABLE events (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    event_ref      TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    ordering_key   TEXT,
    data           BYTEA NOT NULL,
    delivery_count BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, event_ref)
);
CREATE INDEX events_created ON events (created_at);

-- One event to one webhook. seq orders deliveries of an ordering key.
CREATE TABLE deliveries (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    ordering_key    TEXT,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    leased_by       TEXT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
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
    delivery_seq    BIGINT NOT NULL,
    tenant_id       TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    event_ref       TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    format          TEXT NOT NULL,
    attempt_no      BIGINT NOT NULL,
    success         BIGINT NOT NULL,
    http_status     BIGINT,
    error           TEXT,
    response_ms     BIGINT NOT NULL,
    request_headers TEXT NOT NULL,
    dispatched_at   BIGINT NOT NULL,
    response_body   BYTEA,
    next_attempt_at BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX attempts_webhook_newest ON attempts (webhook_id, created_at DESC);
CREATE INDEX attempts_tenant_newest ON attempts (tenant_id, created_at DESC);

CREATE TABLE audit_log (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    details   TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);
