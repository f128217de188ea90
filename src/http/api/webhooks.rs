//! `/api/v1/webhooks`: create, read, update, delete, rotate the secret.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{int_param, ApiJson, ApiQuery, Principal};
use super::AppState;
use crate::domain::event_type::EventTypePattern;
use crate::domain::page::Page;
use crate::domain::secret::Secret;
use crate::domain::time::{now_ms, rfc3339_ms};
use crate::domain::webhook::{self as wh, CustomHeaders, Format, SealedSecrets, Webhook, WebhookUrl};
use crate::store::Activation;

/// The writable fields of a webhook. On create, `name` and `url` are required; on update
/// (PUT or PATCH) every field is optional and only the fields given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Display name.
    pub name: Option<String>,
    /// Destination URL (http or https).
    pub url: Option<String>,
    /// Signing secret; generated (`whsec_…`) when absent on create. Write-only.
    pub secret: Option<String>,
    /// Event types: exact names, `family.*`, or `*` for all.
    pub event_types: Option<Vec<String>>,
    /// json, slack, teams, cef, syslog or splunk_hec.
    pub format: Option<String>,
    /// Retries after the first attempt, 0–10 (default 3).
    pub retry_count: Option<i64>,
    /// Timeout of one attempt in ms, 1000–30000 (default 5000).
    pub timeout_ms: Option<i64>,
    /// Delay before each retry in ms (the last repeats); the global schedule when absent.
    pub retry_delays_ms: Option<Vec<i64>>,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    pub is_active: Option<bool>,
    pub description: Option<String>,
    /// Deliveries per second at most.
    pub max_per_second: Option<i64>,
    /// Who is told when the circuit breaker disables the webhook.
    pub owner_email: Option<String>,
}

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
    pub disabled_reason: Option<String>,
    pub max_per_second: Option<u32>,
    pub owner_email: Option<String>,
    /// When the current secret was set.
    pub secret_rotated_at: String,
    /// Until when the previous secret still signs, during a rotation.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl WebhookView {
    pub fn of(w: &Webhook) -> Self {
        Self {
            id: w.id,
            name: w.name.clone(),
            url: w.url.as_str(),
            description: w.description.clone(),
            event_types: w.event_types.iter().map(EventTypePattern::as_string).collect(),
            format: w.format,
            retry_count: w.retry_count,
            timeout_ms: w.timeout_ms,
            retry_delays_ms: w.retry_delays_ms.clone(),
            headers: w.headers.masked(),
            is_active: w.is_active,
            failure_count: w.failure_count,
            disabled_reason: w.disabled_reason.clone(),
            max_per_second: w.max_per_second,
            owner_email: w.owner_email.clone(),
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

/// The answer to create: the only one that carries the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret. Shown once: store it now.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    pub id: Uuid,
    /// The new signing secret. Shown once.
    pub secret: String,
    /// Until then deliveries carry signatures with both the old and the new secret.
    pub previous_secret_expires_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub page: Option<String>,
    pub per_page: Option<String>,
}

pub fn parse_id(raw: &str) -> ApiResult<Uuid> {
    raw.parse().map_err(|_| ApiError::not_found("webhook"))
}

async fn load(state: &AppState, who: &Principal, id: &str) -> ApiResult<Webhook> {
    let id = parse_id(id)?;
    state.store.get_webhook(&who.tenant, id).await?.ok_or_else(|| ApiError::not_found("webhook"))
}

/// Validates the fields given and applies them to `w`. Returns the names of the changed fields.
async fn apply(
    state: &AppState,
    who: &Principal,
    w: &mut Webhook,
    input: WebhookInput,
) -> ApiResult<Vec<&'static str>> {
    let mut changed = Vec::new();
    if let Some(v) = input.name {
        w.name = wh::parse_name(&v)?;
        changed.push("name");
    }
    if let Some(v) = input.url {
        let url = WebhookUrl::parse(&v, "url")?;
        if let Some(ip) = url.literal_ip() {
            state.address_policy.check(ip).map_err(|why| ApiError::invalid("url", why))?;
        }
        w.url = url;
        changed.push("url");
    }
    if let Some(v) = input.event_types {
        w.event_types = state.parse_patterns(&who.tenant, &v).await?;
        changed.push("event_types");
    }
    if let Some(v) = input.format {
        w.format = Format::parse(&v, "format")?;
        changed.push("format");
    }
    if let Some(v) = input.retry_count {
        w.retry_count = wh::parse_retry_count(v)?;
        changed.push("retry_count");
    }
    if let Some(v) = input.timeout_ms {
        w.timeout_ms = wh::parse_timeout_ms(v)?;
        changed.push("timeout_ms");
    }
    if let Some(v) = input.retry_delays_ms {
        w.retry_delays_ms = Some(wh::parse_retry_delays(&v)?);
        changed.push("retry_delays_ms");
    }
    if let Some(v) = input.headers {
        w.headers = CustomHeaders::parse(&v, &state.settings.header_prefix)?;
        changed.push("headers");
    }
    if let Some(v) = input.description {
        w.description = Some(wh::parse_description(&v)?).filter(|d| !d.is_empty());
        changed.push("description");
    }
    if let Some(v) = input.max_per_second {
        w.max_per_second = Some(wh::parse_max_per_second(v)?);
        changed.push("max_per_second");
    }
    if let Some(v) = input.owner_email {
        w.owner_email = if v.is_empty() { None } else { Some(wh::parse_owner_email(&v)?) };
        changed.push("owner_email");
    }
    if w.format == Format::SplunkHec && w.headers.contains("authorization") {
        return Err(ApiError::invalid("headers.Authorization", "splunk_hec sets Authorization from the secret"));
    }
    if w.url.transport().is_syslog() && !matches!(w.format, Format::Syslog | Format::Cef) {
        let field = if changed.contains(&"format") { "format" } else { "url" };
        return Err(ApiError::invalid(field, "a syslog destination takes format syslog or cef"));
    }
    Ok(changed)
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
    let page = Page::parse(int_param(&q.page, "page")?, int_param(&q.per_page, "per_page")?, 25)
        .map_err(|e| ApiError::from(e).with_status(StatusCode::BAD_REQUEST))?;
    let (items, total) = state.store.list_webhooks(&who.tenant, page).await?;
    Ok(Json(WebhookList {
        data: items.iter().map(WebhookView::of).collect(),
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
    let (w, secret) = create(&state, &who, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook { webhook: WebhookView::of(&w), secret: secret.expose().to_string() }),
    ))
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    who.reader()?;
    Ok(Json(WebhookView::of(&load(&state, &who, &id).await?)))
}

/// PUT and PATCH: both partial, only the fields given change.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", request_body = WebhookInput,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_webhook(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<WebhookInput>,
) -> ApiResult<Json<WebhookView>> {
    let w = update(&state, &who, parse_id(&id)?, input).await?;
    Ok(Json(WebhookView::of(&w)))
}

#[utoipa::path(put, path = "/webhooks/{id}", tag = "webhooks", request_body = WebhookInput,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_webhook(
    state: State<AppState>,
    who: Principal,
    id: Path<String>,
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
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&state, &who, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RotatedSecret), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<RotatedSecret>> {
    let (secret, expires) = rotate(&state, &who, parse_id(&id)?).await?;
    Ok(Json(RotatedSecret {
        id: parse_id(&id)?,
        secret: secret.expose().to_string(),
        previous_secret_expires_at: rfc3339_ms(expires),
    }))
}

// The operations, shared by the API and the dashboard: each checks the caller's role.

/// Creates a webhook; returns it with its secret (shown once).
pub async fn create(state: &AppState, who: &Principal, mut input: WebhookInput) -> ApiResult<(Webhook, Secret)> {
    who.admin()?;
    let name = input.name.clone().ok_or_else(|| ApiError::invalid("name", "name is required").missing())?;
    let url = input.url.clone().ok_or_else(|| ApiError::invalid("url", "url is required").missing())?;
    let secret = match input.secret.take() {
        Some(s) => Secret::parse(&s, "secret")?,
        None if input.format.as_deref() == Some("splunk_hec") => {
            return Err(ApiError::invalid("secret", "splunk_hec needs the HEC token as its secret").missing())
        }
        None => Secret::generate(),
    };
    if input.event_types.is_none() {
        input.event_types = Some(state.settings.default_event_types.clone());
    }
    let now = now_ms();
    let id = Uuid::now_v7();
    let mut w = Webhook {
        id,
        tenant_id: who.tenant.clone(),
        name: wh::parse_name(&name)?,
        url: WebhookUrl::parse(&url, "url")?,
        description: None,
        event_types: Vec::new(),
        format: Format::Json,
        retry_count: 3,
        timeout_ms: 5000,
        retry_delays_ms: None,
        headers: CustomHeaders::default(),
        is_active: input.is_active.unwrap_or(true),
        failure_count: 0,
        disabled_reason: None,
        max_per_second: None,
        owner_email: None,
        secret: SealedSecrets {
            current: state.cipher.seal(secret.expose().as_bytes(), id.as_bytes()),
            previous: None,
            previous_expires_at: None,
            rotated_at: now,
        },
        created_at: now,
        updated_at: now,
    };
    if !w.is_active {
        w.disabled_reason = Some(wh::disabled_reason::MANUAL.to_string());
    }
    apply(state, who, &mut w, input).await?;
    let audit = who.audit(
        "webhook.create",
        format!("webhook:{id}"),
        serde_json::json!({"name": w.name, "url": w.url.as_str(), "format": w.format.as_str()}),
    );
    state.store.insert_webhook(&w, audit).await?;
    tracing::info!(webhook = %id, tenant = %who.tenant, "webhook created");
    Ok((w, secret))
}

/// Changes the fields given; returns the webhook as stored.
pub async fn update(state: &AppState, who: &Principal, id: Uuid, mut input: WebhookInput) -> ApiResult<Webhook> {
    who.admin()?;
    let mut w = state.store.get_webhook(&who.tenant, id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    let new_secret = input.secret.take().map(|s| Secret::parse(&s, "secret")).transpose()?;
    let activation = match input.is_active.take() {
        Some(true) if !w.is_active => Activation::Enable,
        Some(false) if w.is_active => Activation::Disable,
        _ => Activation::Unchanged,
    };
    let mut changed = apply(state, who, &mut w, input).await?;
    if activation != Activation::Unchanged {
        changed.push("is_active");
    }
    w.updated_at = now_ms();
    let audit = who.audit("webhook.update", format!("webhook:{}", w.id), serde_json::json!({"fields": changed}));
    if !state.store.update_webhook(&w, activation, audit).await? {
        return Err(ApiError::not_found("webhook"));
    }
    if let Some(secret) = new_secret {
        // A secret set by hand replaces the old one at once (rotate-secret keeps a grace period).
        let sealed = SealedSecrets {
            current: state.cipher.seal(secret.expose().as_bytes(), w.id.as_bytes()),
            previous: None,
            previous_expires_at: None,
            rotated_at: now_ms(),
        };
        let audit = who.audit("webhook.secret_set", format!("webhook:{}", w.id), serde_json::json!({}));
        state.store.update_secrets(&who.tenant, w.id, &sealed, audit).await?;
    }
    if activation == Activation::Enable {
        state.dispatcher.wake([w.id]);
    }
    state.store.get_webhook(&who.tenant, id).await?.ok_or_else(|| ApiError::not_found("webhook"))
}

pub async fn delete(state: &AppState, who: &Principal, id: Uuid) -> ApiResult<()> {
    who.admin()?;
    let audit = who.audit("webhook.delete", format!("webhook:{id}"), serde_json::json!({}));
    if state.store.delete_webhook(&who.tenant, id, audit).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

/// A new secret; the old one keeps signing for the grace period. Returns the secret and when
/// the old one stops.
pub async fn rotate(state: &AppState, who: &Principal, id: Uuid) -> ApiResult<(Secret, i64)> {
    who.admin()?;
    let w = state.store.get_webhook(&who.tenant, id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    let secret = Secret::generate();
    let now = now_ms();
    let expires = now + state.settings.secret_grace.as_millis() as i64;
    let sealed = SealedSecrets {
        current: state.cipher.seal(secret.expose().as_bytes(), w.id.as_bytes()),
        previous: Some(w.secret.current.clone()),
        previous_expires_at: Some(expires),
        rotated_at: now,
    };
    let audit = who.audit(
        "webhook.rotate_secret",
        format!("webhook:{}", w.id),
        serde_json::json!({"previous_secret_expires_at": rfc3339_ms(expires)}),
    );
    if !state.store.update_secrets(&who.tenant, w.id, &sealed, audit).await? {
        return Err(ApiError::not_found("webhook"));
    }
    Ok((secret, expires))
}
