//! Tocsin: durable delivery of security events to webhooks, chat and SIEMs.
//!
//! The modules below are layers, declared lowest first: each may use only the ones declared
//! before it (`tests/architecture.rs` checks it). docs/ARCHITECTURE.md follows an event through
//! them.

// Keys, digests and sealing of secrets at rest.
pub mod crypto;

// Counters and histograms every layer records into; served at /metrics.
pub mod metrics;

// Validated types and pure rules: names, URLs, secrets, tokens, time. No I/O.
pub mod domain;

// The configured event-type catalogue.
pub mod catalogue;

// The two signature schemes (seed-style HMAC and Standard Webhooks).
pub mod signing;

// Product profiles: the contracts (body shape, headers, signature, API dialect) tenants speak.
pub mod profile;

// One folder per format: how an event is rendered and how the receiver's answer is read.
pub mod destinations;

// Durable state behind one interface: SQLite and PostgreSQL.
pub mod store;

// Senders: HTTP and syslog, behind the SSRF guard.
pub mod transport;

// The settings, resolved once at start-up.
pub mod config;

// An accepted event becomes one delivery per subscribed webhook, committed atomically.
pub mod fanout;

// The engine: claims, attempts, retries, records, the breaker.
pub mod delivery;

// The use cases shared by the API, the dashboard and the CLI.
pub mod service;

// The JSON API and the dashboard, adapters over `service`.
pub mod http;

// The composition root: builds everything, runs and supervises the tasks.
pub mod app;

// `tocsin listen`: a local receiver for testing integrations.
pub mod listen;
