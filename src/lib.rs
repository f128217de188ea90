//! Tocsin: durable delivery of security events to webhooks, chat and SIEMs.
//!
//! The modules are layers; each depends only on the ones listed before it (a test checks it):
//!
//! - `crypto`, `domain`, `catalogue`, `signing`: validated types and pure logic, no I/O of note.
//! - `destinations`: one folder per format (render, response rules, defaults) behind one trait.
//! - `store`: durable state, SQLite and PostgreSQL.
//! - `transport`: HTTP and syslog senders with the SSRF guard.
//! - `config`: the settings, resolved once at start-up.
//! - `fanout`: an accepted event becomes one delivery per subscribed webhook, committed.
//! - `delivery`: the engine that claims, attempts, retries and records deliveries.
//! - `service`: the use cases shared by the API, the dashboard and the CLI.
//! - `http`: the JSON API and the dashboard, adapters over `service`.
//! - `app`: the composition root: builds everything, runs and supervises the tasks.
//! - `listen`: `tocsin listen`, a local receiver for testing integrations.
//!
//! See docs/ARCHITECTURE.md for the life of an event.

pub mod app;
pub mod catalogue;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod destinations;
pub mod domain;
pub mod fanout;
pub mod http;
pub mod listen;
pub mod service;
pub mod signing;
pub mod store;
pub mod transport;
