//! `/api/v1/event-types`: the catalogue. Everyone who may read sees the configured types and the
//! tenant's own; admins add, replace and delete the tenant's own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::domain::event_type::{EventType, EventTypeName};
use crate::domain::text::is_free_text;
use crate::service::AppState;
use crate::service::Principal;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    pub name: String,
    pub description: String,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presentation: Option<serde_json::Value>,
    /// Configured for the deployment (read-only through the API) rather than the tenant's own.
    pub built_in: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: Vec<EventTypeView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeInput {
    pub description: String,
    /// A JSON schema that published `data` must satisfy.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// An example `data` object, used by test events.
    #[schema(value_type = Option<Object>)]
    pub example: Option<serde_json::Value>,
    /// How chat and SIEM formats present the event.
    #[schema(value_type = Option<Object>)]
    pub presentation: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/event-types", tag = "event-types",
    responses((status = 200, body = EventTypeList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_event_types(State(state): State<AppState>, who: Principal) -> ApiResult<Json<EventTypeList>> {
    who.reader()?;
    let own = state.store.list_event_types(&who.tenant).await?;
    let profile = state.profile_of(&who.tenant).await?;
    let data = profile
        .catalogue
        .merged(own)
        .into_iter()
        .map(|et| EventTypeView {
            built_in: profile.catalogue.contains(&et.name),
            name: et.name,
            description: et.description,
            schema: et.schema,
            example: et.example,
            presentation: et.presentation,
        })
        .collect();
    Ok(Json(EventTypeList { data }))
}

fn check_object(v: &Option<serde_json::Value>, field: &str) -> ApiResult<()> {
    match v {
        Some(v) if !v.is_object() => Err(ApiError::invalid(field, format!("{field} must be a JSON object"))),
        _ => Ok(()),
    }
}

/// Creates or replaces one of the tenant's own event types.
#[utoipa::path(put, path = "/event-types/{name}", tag = "event-types", request_body = EventTypeInput,
    params(("name" = String, Path)),
    responses((status = 200, body = EventTypeView), (status = 201, body = EventTypeView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_event_type(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(input): ApiJson<EventTypeInput>,
) -> ApiResult<(StatusCode, Json<EventTypeView>)> {
    who.admin()?;
    let name = EventTypeName::parse(&name, "name")?;
    if state.profile_of(&who.tenant).await?.catalogue.contains(name.as_str()) {
        return Err(ApiError::conflict(format!("{} is configured for the deployment and read-only", name.as_str()))
            .field("name"));
    }
    let description = input.description.trim();
    if description.is_empty() || description.chars().count() > 1000 || !is_free_text(description) {
        return Err(ApiError::invalid(
            "description",
            "description must be 1 to 1000 characters, without control characters other than line breaks and tabs",
        ));
    }
    check_object(&input.schema, "schema")?;
    if let Some(schema) = &input.schema {
        jsonschema::validator_for(schema)
            .map_err(|e| ApiError::invalid("schema", format!("schema is not a valid JSON schema: {e}")))?;
    }
    check_object(&input.example, "example")?;
    check_object(&input.presentation, "presentation")?;
    let et = EventType {
        name: name.as_str().to_string(),
        description: description.to_string(),
        schema: input.schema,
        example: input.example,
        presentation: input.presentation,
    };
    let audit = who.audit("event_type.put", format!("event_type:{}", et.name), serde_json::json!({}));
    let created = state.store.upsert_event_type(&who.tenant, &et, audit).await?;
    let view = EventTypeView {
        name: et.name,
        description: et.description,
        schema: et.schema,
        example: et.example,
        presentation: et.presentation,
        built_in: false,
    };
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view)))
}

#[utoipa::path(post, path = "/event-types/{name}", tag = "event-types", request_body = EventTypeInput,
    params(("name" = String, Path)),
    responses((status = 201, body = EventTypeView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_event_type(
    state: State<AppState>,
    who: Principal,
    name: ApiPath<String>,
    input: ApiJson<EventTypeInput>,
) -> ApiResult<(StatusCode, Json<EventTypeView>)> {
    put_event_type(state, who, name, input).await
}

#[utoipa::path(delete, path = "/event-types/{name}", tag = "event-types",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_event_type(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    if state.profile_of(&who.tenant).await?.catalogue.contains(&name) {
        return Err(ApiError::conflict(format!("{name} is configured for the deployment and read-only")).field("name"));
    }
    let audit = who.audit("event_type.delete", format!("event_type:{name}"), serde_json::json!({}));
    if state.store.delete_event_type(&who.tenant, &name, audit).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("event type"))
    }
}
