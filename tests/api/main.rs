//! Black-box tests of the HTTP API over real sockets, on both stores.

mod helpers;

mod access;
mod event_types;
mod validation;
mod webhooks;
