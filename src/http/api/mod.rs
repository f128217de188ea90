//! The management and publishing API: JSON over HTTP under `/api/v1`.
//!
//! Handlers read the request (JSON bodies, query parameters, the bearer token), call the use
//! cases in `service`, and shape the answer; failures become JSON errors in `error.rs`. The
//! OpenAPI document is generated from the handlers' annotations, so it cannot drift from them.

pub mod audit;
pub mod deliveries;
pub mod dialect;
pub mod error;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod health;
pub mod tenant;
pub mod tokens;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tocsin", description = "Delivers security events to webhooks, chat and SIEMs."),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    tags((name = "webhooks"), (name = "events"), (name = "deliveries"), (name = "event-types"), (name = "tokens"),
         (name = "audit"), (name = "tenant"))
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
        .routes(routes!(deliveries::retry_failed))
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
        .routes(routes!(webhooks::public_keys))
        .routes(routes!(webhooks::verify_endpoint))
        .routes(routes!(event_types::list_event_types))
        .routes(routes!(event_types::put_event_type, event_types::post_event_type, event_types::delete_event_type))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::export_audit))
        .routes(routes!(tenant::get_tenant, tenant::put_tenant))
        .split_for_parts()
}
