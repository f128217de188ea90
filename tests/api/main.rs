//! Black-box tests of the HTTP API over real sockets, on both stores.

mod helpers;
mod receiver;
mod siem;
mod smtp;

mod access;
mod delivery;
mod event_types;
mod https;
mod validation;
mod webhooks;
