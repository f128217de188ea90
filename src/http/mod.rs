//! The HTTP surface: the JSON API under `/api/v1` and the dashboard under `/ui`.

pub mod api;
pub mod ui;
