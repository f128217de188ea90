//! Tocsin: durable delivery of security events to webhooks, chat and SIEMs.
//!
//! Layout: `api` (HTTP, auth, JSON errors) → `domain` (validated types, no I/O) → `store`
//! (one interface, SQLite and PostgreSQL). `startup` wires them; `config` resolves settings.

pub mod api;
pub mod bench;
pub mod catalogue;
pub mod config;
pub mod crypto;
pub mod dispatch;
pub mod domain;
pub mod listen;
pub mod notify;
pub mod publish;
pub mod render;
pub mod signing;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod ui;
