//! `/api/v1/webhooks`: create, read, update, delete, rotate the secret.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiResult, ErrorBody};
use super::extract::{page_params, parse_json, ApiJson, ApiPath, ApiQuery};
use crate::domain::event_type::EventTypePattern;
use crate::domain::secret::Secret;
use crate::domain::time::{now_ms, rfc3339_ms};
use crate::domain::webhook::{Format, Health, Webhook};
use crate::service::webhooks::{self as ops, parse_id, WebhookInput};
use crate::service::{AppState, Principal};

/// A webhook as shown: never its secret; custom header values masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub name: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub format: Format,
    pub retry_count: u32,
    pub timeout_ms: u32,
    pub retry_delays_ms: Option<Vec<u64>>,
    /// Header names with masked values.
    pub headers: BTreeMap<String, String>,
    pub is_active: bool,
    pub failure_count: u32,
    /// healthy, failing (its circuit is open: deliveries wait and are probed) or disabled.
    pub health: Health,
    /// While failing: when the next probe may go out.
    pub circuit_open_until: Option<String>,
    pub disabled_reason: Option<String>,
    pub max_per_second: Option<u32>,
    pub owner_email: Option<String>,
    /// Whether deliveries are signed: false only for a webhook created without a secret where
    /// the tenant's profile makes signing optional.
    pub signed: bool,
    /// Events less severe are not delivered (info, low, medium, high, critical).
    pub min_severity: Option<&'static str>,
    /// The CEL expression events must pass to be delivered.
    pub filter: Option<String>,
    /// Endpoint ownership: not_required, pending (deliveries held until the endpoint answers a
    /// challenge: `POST /webhooks/{id}/verify`), verified, or exempt (syslog, Splunk HEC).
    pub verification: &'static str,
    /// `hmac-sha256` (a shared secret) or `ed25519`.
    pub signing_algorithm: &'static str,
    /// Ed25519 only: the current public key (`whpk_` + base64 of 32 bytes). It is public: give it
    /// to receivers, or let them fetch `GET /webhooks/{id}/public-keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// When the current secret was set.
    pub secret_rotated_at: String,
    /// Until when the previous secret still signs, during a rotation.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl WebhookView {
    /// The webhook as `who` may see it: the URL's credentials only for admins.
    pub fn of(w: &Webhook, who: &Principal) -> Self {
        Self {
            id: w.id,
            name: w.name.clone(),
            url: if who.sees_credentials() { w.url.as_str() } else { w.url.masked() },
            description: w.description.clone(),
            event_types: w.event_types.iter().map(EventTypePattern::as_string).collect(),
            format: w.format,
            retry_count: w.retry_count,
            timeout_ms: w.timeout_ms,
            retry_delays_ms: w.retry_delays_ms.clone(),
            headers: w.headers.masked(),
            is_active: w.is_active,
            failure_count: w.failure_count,
            health: w.health(),
            circuit_open_until: w.circuit_open_until.map(rfc3339_ms),
            disabled_reason: w.disabled_reason.clone(),
            max_per_second: w.max_per_second,
            owner_email: w.owner_email.clone(),
            signed: !w.secret.is_unsigned(),
            min_severity: w.min_severity.map(|s| s.name()),
            filter: w.filter.as_ref().map(|f| f.source().to_string()),
            verification: w.verification.as_str(),
            signing_algorithm: w.signing_algorithm.as_str(),
            public_key: w.secret.public_key.clone(),
            secret_rotated_at: rfc3339_ms(w.secret.rotated_at),
            previous_secret_expires_at: w
                .secret
                .previous_expires_at
                .filter(|t| *t > now_ms() && w.secret.previous.is_some())
                .map(rfc3339_ms),
            created_at: rfc3339_ms(w.created_at),
            updated_at: rfc3339_ms(w.updated_at),
        }
    }
}

/// A secret as an answer may show it: a shared secret, once; never an Ed25519 private key.
fn shared_secret(secret: &Secret) -> Option<String> {
    (!secret.is_unsigned() && secret.ed25519_seed().is_none()).then(|| secret.expose().to_string())
}

/// The answer to create: the only one that carries the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret. Shown once: store it now. Null when the webhook signs nothing (no
    /// secret was given and the tenant's profile makes signing optional, or a syslog
    /// destination), and for ed25519, whose private key never leaves Tocsin (see `public_key`).
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

/// The optional body of a rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// The new secret; generated (`whsec_…`) when absent.
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    pub id: Uuid,
    /// The new signing secret. Shown once. Null for ed25519, whose private key never leaves
    /// Tocsin: its new `public_key` is given instead.
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Until then deliveries carry signatures with both the old and the new secret.
    pub previous_secret_expires_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub page: Option<String>,
    pub per_page: Option<String>,
}

#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    params(("page" = Option<u32>, Query, description = "from 1"), ("per_page" = Option<u32>, Query, description = "1–100, default 25")),
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<WebhookList>> {
    who.reader()?;
    let page = page_params(&q.page, &q.per_page, 25)?;
    let (items, total) = state.store.list_webhooks(&who.tenant, page).await?;
    Ok(Json(WebhookList {
        data: items.iter().map(|w| WebhookView::of(w, &who)).collect(),
        page: page.page,
        per_page: page.per_page,
        total,
    }))
}

#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = CreatedWebhook), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(input): ApiJson<WebhookInput>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let (w, secret) = ops::create(&state, &who, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook { webhook: WebhookView::of(&w, &who), secret: shared_secret(&secret) }),
    ))
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookView>> {
    who.reader()?;
    Ok(Json(WebhookView::of(&ops::get(&state, &who, &id).await?, &who)))
}

/// PUT and PATCH: both partial, only the fields given change.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", request_body = WebhookInput,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_webhook(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<WebhookInput>,
) -> ApiResult<Json<WebhookView>> {
    let w = ops::update(&state, &who, parse_id(&id)?, input).await?;
    Ok(Json(WebhookView::of(&w, &who)))
}

#[utoipa::path(put, path = "/webhooks/{id}", tag = "webhooks", request_body = WebhookInput,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_webhook(
    state: State<AppState>,
    who: Principal,
    id: ApiPath<String>,
    input: ApiJson<WebhookInput>,
) -> ApiResult<Json<WebhookView>> {
    update_webhook(state, who, id, input).await
}

#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    ops::delete(&state, &who, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks", request_body(content = Option<RotateInput>),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RotatedSecret), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<RotatedSecret>> {
    // The body is optional: `{"secret": "…"}` sets the new secret instead of generating one.
    let input: RotateInput =
        if body.iter().all(u8::is_ascii_whitespace) { RotateInput::default() } else { parse_json(&body)? };
    let (secret, expires) = ops::rotate(&state, &who, parse_id(&id)?, input.secret.as_deref()).await?;
    Ok(Json(RotatedSecret {
        id: parse_id(&id)?,
        secret: shared_secret(&secret),
        public_key: secret.ed25519_public_key(),
        previous_secret_expires_at: rfc3339_ms(expires),
    }))
}

/// A JSON Web Key Set of an ed25519 webhook's public keys: the current one, and the previous one
/// while a rotation's grace period lasts (deliveries carry a `v1a` signature by each).
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicKeySet {
    pub keys: Vec<PublicJwk>,
}

/// One Ed25519 public key as a JWK (RFC 8037).
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicJwk {
    /// `OKP`
    pub kty: &'static str,
    /// `Ed25519`
    pub crv: &'static str,
    /// The public key, base64url without padding.
    pub x: String,
    /// `current` or `previous`.
    pub kid: &'static str,
    /// `sig`
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// `EdDSA`
    pub alg: &'static str,
    /// The same key as the API shows it (`whpk_…`).
    pub public_key: String,
    /// The previous key: until when it still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[utoipa::path(get, path = "/webhooks/{id}/public-keys", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PublicKeySet), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn public_keys(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PublicKeySet>> {
    let keys = ops::public_keys(&state, &who, &id).await?;
    let jwk = |(raw, kid, expires): ([u8; 32], &'static str, Option<i64>)| {
        use base64::Engine as _;
        PublicJwk {
            kty: "OKP",
            crv: "Ed25519",
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
            kid,
            use_: "sig",
            alg: "EdDSA",
            public_key: format!(
                "{}{}",
                crate::domain::secret::WHPK,
                base64::engine::general_purpose::STANDARD.encode(raw)
            ),
            expires_at: expires.map(rfc3339_ms),
        }
    };
    Ok(Json(PublicKeySet { keys: keys.into_iter().map(jwk).collect() }))
}

/// Challenges the endpoint again: 200 with the webhook once it proved its ownership (its held
/// deliveries then flow), 409 saying why not.
#[utoipa::path(post, path = "/webhooks/{id}/verify", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify_endpoint(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookView>> {
    let w = ops::verify(&state, &who, parse_id(&id)?).await?;
    Ok(Json(WebhookView::of(&w, &who)))
}
