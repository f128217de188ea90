//! The HTTP surface: the JSON API under `/api/v1` and the dashboard under `/ui`, both adapters
//! over `service`, behind the layers every request passes: panic catching, the request log and
//! its counts; and `/metrics` for Prometheus.

pub mod api;
pub mod metrics;
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
    // Products' own management routes, served by the same API.
    let dialects = api::dialect::routes(&state, api.clone().with_state(state.clone()));
    let app = Router::new()
        .merge(ui::router())
        .merge(dialects)
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::scrape))
        .route("/readyz", get(health::readyz))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found("route") });
    guarded(app).with_state(state)
}

/// The layers every request passes, innermost first: panic catching, then the request log.
fn guarded<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes.layer(axum::middleware::from_fn(catch_panic)).layer(axum::middleware::from_fn(log_request))
}

/// A handler that panics answers 500 with the usual JSON error, and the connection stays
/// usable. The panic itself is logged once, in one line, by the process's panic hook
/// (`app::telemetry`).
async fn catch_panic(req: Request, next: Next) -> Response {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into_response(),
    }
}

/// One log line per request: method, route, status, duration. Never headers or bodies. Every
/// line logged while the request is handled carries its `request_id` (the caller's
/// `X-Request-Id` when it is a short token, else a new one), which the answer returns.
async fn log_request(req: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), String::from);
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let span = tracing::info_span!("request", request_id = %request_id);
    let start = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    // A fixed set of methods: any other name a client sends is counted as `other`.
    let method_label = match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let labels = crate::metrics::RequestLabels { method: method_label, route, status };
    crate::metrics::global().http_requests.get_or_create(&labels).inc();
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(%method, %path, status, ms, "request");
        } else {
            tracing::debug!(%method, %path, status, ms, "request");
        }
    });
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_json_and_the_connection_stays_usable() {
        let routes: Router = guarded(
            Router::new()
                .route("/boom", get(|| async { panic!("boom") as &'static str }))
                .route("/fine", get(|| async { "fine" })),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes).await });
        // One client: one kept-alive connection for both requests.
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
        let boom = client.get(format!("http://{addr}/boom")).send().await.expect("an answer, not a dropped connection");
        assert_eq!(boom.status(), 500);
        let body: serde_json::Value = boom.json().await.unwrap();
        assert_eq!(body["error"]["code"], "internal");
        let fine = client.get(format!("http://{addr}/fine")).send().await.unwrap();
        assert_eq!(fine.status(), 200);
    }
}
