//! The management and publishing API: JSON over HTTP under `/api/v1`.
//!
//! Handlers parse input into domain types, check the caller's role, and call the store. The
//! OpenAPI document is generated from the handlers' annotations, so it cannot drift from them.

pub mod audit;
pub mod deliveries;
pub mod error;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod health;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalogue::Catalogue;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::delivery::Dispatcher;
use crate::domain::event_type::EventTypePattern;
use crate::domain::tenant::TenantId;
use crate::store::Store;
use crate::transport::ssrf::AddressPolicy;
use error::{ApiError, ApiResult};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub cipher: Cipher,
    pub catalogue: Catalogue,
    pub settings: Settings,
    pub address_policy: AddressPolicy,
    pub dispatcher: Dispatcher,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Parses subscription patterns against the configured catalogue and the tenant's own types.
    pub async fn parse_patterns(&self, tenant: &TenantId, raw: &[String]) -> ApiResult<Vec<EventTypePattern>> {
        if raw.is_empty() {
            return Err(ApiError::invalid("event_types", "list at least one event type, or * for all"));
        }
        if raw.len() > 200 {
            return Err(ApiError::invalid("event_types", "at most 200 entries"));
        }
        let own = self.store.list_event_types(tenant).await?;
        let names: Vec<&str> =
            self.catalogue.iter().map(|e| e.name.as_str()).chain(own.iter().map(|e| e.name.as_str())).collect();
        let mut out: Vec<EventTypePattern> = Vec::with_capacity(raw.len());
        for (i, p) in raw.iter().enumerate() {
            let pattern = EventTypePattern::parse(p, &format!("event_types[{i}]"), names.iter().copied())?;
            if !out.contains(&pattern) {
                out.push(pattern);
            }
        }
        Ok(out)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tocsin", description = "Delivers security events to webhooks, chat and SIEMs."),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    tags((name = "webhooks"), (name = "events"), (name = "deliveries"), (name = "event-types"), (name = "tokens"),
         (name = "audit"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The `/api/v1` routes and their OpenAPI document. `max_event_bytes` sizes the publish limits.
pub fn api_routes(max_event_bytes: usize) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // Publishing takes larger bodies than management: one event, or a batch of up to 1000.
    let single = OpenApiRouter::new()
        .routes(routes!(events::publish_event))
        .layer(DefaultBodyLimit::max(max_event_bytes + 64 * 1024));
    let batch = OpenApiRouter::new()
        .routes(routes!(events::publish_batch))
        .layer(DefaultBodyLimit::max((max_event_bytes * 4).clamp(16 * 1024 * 1024, 64 * 1024 * 1024)));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(single)
        .merge(batch)
        .routes(routes!(events::get_event))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::get_delivery))
        .routes(routes!(deliveries::recent_deliveries))
        .routes(routes!(deliveries::test_webhook))
        .routes(routes!(deliveries::redeliver))
        .routes(routes!(deliveries::webhook_stats))
        .routes(routes!(deliveries::preview))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::put_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(event_types::list_event_types))
        .routes(routes!(event_types::put_event_type, event_types::post_event_type, event_types::delete_event_type))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(audit::list_audit))
        .split_for_parts()
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes(state.settings.max_event_bytes);
    let openapi = Arc::new(openapi);
    let api = api
        .route("/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(1024 * 1024));
    Router::new()
        .merge(crate::http::ui::router())
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
