//! A profile's management API as its product documents it (NetRecon's
//! `/api/v1/integrations/webhooks` with `events` and `active`): each request is translated onto
//! `/api/v1/webhooks` (path and field names) and served by the very same handlers, so the
//! validation, the roles and the answers are Tocsin's; the answer's field names are translated
//! back. A dialect's routes serve only tenants that speak its profile.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{Map, Value};
use tower::ServiceExt as _;

use super::error::ApiError;
use crate::profile::{Dialect, Profile};
use crate::service::{AppState, Principal};

/// The largest request body a dialect route reads (management calls are small).
const MAX_BODY: usize = 1024 * 1024;

/// The routes of every profile that has its own, each forwarding to `api` (the `/api/v1` router).
pub fn routes(state: &AppState, api: Router) -> Router<AppState> {
    let mut router = Router::new();
    for profile in state.profiles.iter() {
        let Some(dialect) = &profile.api else { continue };
        let target = Target { profile: profile.clone(), api: api.clone() };
        let (exact, nested) = (target.clone(), target);
        router = router
            .route(&dialect.base, any(move |s, w, r| forward(exact.clone(), s, w, r)))
            .route(&format!("{}/{{*rest}}", dialect.base), any(move |s, w, r| forward(nested.clone(), s, w, r)));
    }
    router
}

#[derive(Clone)]
struct Target {
    profile: Arc<Profile>,
    api: Router,
}

async fn forward(target: Target, State(state): State<AppState>, who: Principal, req: Request) -> Response {
    let dialect = target.profile.api.as_ref().expect("only profiles with a dialect have routes");
    match state.profile_of(&who.tenant).await {
        Ok(p) if p.name == target.profile.name => {}
        Ok(p) => {
            return ApiError::not_found(&format!(
                "route (it belongs to the {} profile; this tenant speaks {})",
                target.profile.name, p.name
            ))
            .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let (mut parts, body) = req.into_parts();
    let rest = parts.uri.path().strip_prefix(dialect.base.as_str()).unwrap_or_default();
    let path = match rest.split('/').collect::<Vec<_>>().as_slice() {
        [""] => "/webhooks".to_string(),
        ["", id] | ["", id, "test" | "deliveries"] if !id.is_empty() => format!("/webhooks{rest}"),
        _ => return ApiError::not_found("route").into_response(),
    };
    let uri = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    parts.uri = match uri.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => return ApiError::not_found("route").into_response(),
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the body is larger than 1 MiB")
                .into_response()
        }
    };
    // A body that is not a JSON object goes as it is: the handler's parser names the problem.
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(fields)) => {
            let renamed: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (dialect.to_tocsin(&k).to_string(), v)).collect();
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(Value::Object(renamed).to_string())
        }
        _ => Body::from(bytes),
    };
    // A new request, not the old parts: their extensions hold this route's path parameters.
    let mut inner = Request::new(body);
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = parts.uri;
    *inner.version_mut() = parts.version;
    *inner.headers_mut() = parts.headers;
    let answer = match target.api.oneshot(inner).await {
        Ok(answer) => answer,
        Err(never) => match never {},
    };
    translate_answer(dialect, answer).await
}

/// Renames the fields of a JSON answer into the product's names: a webhook's, a list's items',
/// and the field an error names.
async fn translate_answer(dialect: &Dialect, answer: Response) -> Response {
    let (mut parts, body) = answer.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    rename_object(dialect, &mut value);
    if let Some(items) = value.get_mut("data").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(|item| rename_object(dialect, item));
    }
    if let Some(error) = value.get_mut("error").and_then(Value::as_object_mut) {
        if let Some(field) = error.get("field").and_then(Value::as_str).map(String::from) {
            let theirs = product_path(dialect, &field);
            if let Some(Value::String(message)) = error.get_mut("message") {
                if let Some(rest) = message.strip_prefix(&format!("{field}:")) {
                    *message = format!("{theirs}:{rest}");
                }
            }
            error.insert("field".into(), Value::String(theirs));
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}

fn rename_object(dialect: &Dialect, value: &mut Value) {
    if let Value::Object(fields) = value {
        let taken = std::mem::take(fields);
        *fields = taken.into_iter().map(|(k, v)| (dialect.to_product(&k).to_string(), v)).collect();
    }
}

/// A field path (`event_types[2]`, `headers.X-Key`) with its first name in the product's words.
fn product_path(dialect: &Dialect, path: &str) -> String {
    let end = path.find(['[', '.']).unwrap_or(path.len());
    let (name, rest) = path.split_at_checked(end).unwrap_or((path, ""));
    format!("{}{rest}", dialect.to_product(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_fields_translate_both_ways() {
        let d = Dialect {
            base: "/api/v1/integrations/webhooks".into(),
            fields: vec![("events".into(), "event_types".into()), ("active".into(), "is_active".into())],
        };
        assert_eq!(product_path(&d, "event_types[3]"), "events[3]");
        assert_eq!(product_path(&d, "is_active"), "active");
        assert_eq!(product_path(&d, "headers.X-Key"), "headers.X-Key");
        let mut v = serde_json::json!({"event_types": ["*"], "is_active": true, "url": "u"});
        rename_object(&d, &mut v);
        assert_eq!(v, serde_json::json!({"events": ["*"], "active": true, "url": "u"}));
    }
}
