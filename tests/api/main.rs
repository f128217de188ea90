//! Black-box tests of the HTTP API over real sockets, on both stores.

#![allow(clippy::let_underscore_must_use, clippy::string_slice)] // tests: no untrusted input reaches them

mod helpers;
#[path = "../support/ocsf.rs"]
mod ocsf;
mod receiver;
mod seeds;
mod siem;
mod smtp;

mod access;
mod backup;
mod delivery;
mod ed25519;
mod event_types;
mod filters;
mod https;
mod ledger;
mod malformed;
mod migrate_store;
mod pg_tls;
mod plans;
mod profiles;
mod readme;
mod validation;
mod verification;
mod webhooks;
