//! The HTTP surface: the JSON API under `/api/v1` and the dashboard under `/ui`, both adapters
//! over `service`, behind the layers every request passes: panic catching, the request log.

pub mod api;
pub mod ui;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::service::AppState;
use api::error::ApiError;
use api::health;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api::api_routes(state.settings.max_event_bytes);
    let openapi = Arc::new(openapi);
    let api = api
        .route("/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(1024 * 1024));
    Router::new()
        .merge(ui::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request: method, route, status, duration. Never headers or bodies.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, ms, "request");
    } else {
        tracing::debug!(%method, %path, status, ms, "request");
    }
    response.into_response()
}
