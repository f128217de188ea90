//! `GET /metrics`: Prometheus' scrape, in the OpenMetrics text format; behind the Bearer token
//! `TOCSIN_METRICS_TOKEN` when it is set (compared in constant time).

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::api::error::ApiError;
use crate::crypto::constant_time_eq;
use crate::domain::time::now_ms;
use crate::service::AppState;

pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.settings.metrics_token {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), token.0.as_bytes()) {
            let message = "GET /metrics needs Authorization: Bearer <TOCSIN_METRICS_TOKEN>";
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
        }
    }
    match state.store.metrics_snapshot(now_ms()).await {
        Ok(snapshot) => (
            [(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            crate::metrics::render(&snapshot),
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
