//! Request extractors that answer bad input with a JSON error naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::page::Page;
use crate::service::caller::{authenticate, authenticate_publisher};
use crate::service::AppState;
use crate::service::ServiceError;
use crate::service::{Principal, Publisher};

/// A JSON body: `Content-Type: application/json` (else 415), within the size limit (else 413),
/// syntactically valid (else 400), and of the right shape (else 422 naming the field).
pub struct ApiJson<T>(pub T);

/// Fields the server sets; a client that sends them is told so.
const READ_ONLY: &[&str] = &["id", "failure_count", "disabled_reason", "created_at", "updated_at"];

/// Where a JSON document came from: a request body, or a query string read as one. Their
/// errors differ: a body's shape errors are 422 (`unknown_field`, `invalid_type`), a query's are
/// 400 (`unknown_parameter`, `invalid_parameter`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Body,
    Query,
}

impl Source {
    fn shape_error(self, body_code: &'static str) -> (StatusCode, &'static str) {
        match (self, body_code) {
            (Source::Body, code) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            (Source::Query, "unknown_field") => (StatusCode::BAD_REQUEST, "unknown_parameter"),
            (Source::Query, _) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
        }
    }
}

/// Parses a request body, with errors that name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    decode(bytes, Source::Body)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], source: Source) -> Result<T, ApiError> {
    // Tracking the path costs on every field; it is only needed to name what failed, so a
    // body that parses is parsed once, untracked, and a bad one again, tracked.
    if let Ok(parsed) = serde_json::from_slice(bytes) {
        return Ok(parsed);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not valid JSON: {msg}"))
            }
            _ => {
                if let Some(name) = msg.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
                    // The path already ends with the unknown field's name.
                    let field = if path == "." { name.to_string() } else { path.clone() };
                    let message = if READ_ONLY.contains(&name) {
                        format!("{name} is read-only")
                    } else {
                        format!("unknown field {name}")
                    };
                    let (status, code) = source.shape_error("unknown_field");
                    return ApiError::new(status, code, message).field(field);
                }
                if let Some(name) = msg.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                    let (status, code) = source.shape_error("missing_field");
                    return ApiError::new(status, code, format!("{name} is required")).field(name);
                }
                let field = if path == "." { None } else { Some(path.clone()) };
                let (status, code) = source.shape_error("invalid_type");
                let mut err = ApiError::new(
                    status,
                    code,
                    match &field {
                        Some(f) => format!("{f}: {msg}"),
                        None => msg,
                    },
                );
                err.field = field;
                err
            }
        }
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        // A body that trickles in holds a connection: it has the request timeout to arrive.
        let reading = tokio::time::timeout(state.settings.request_timeout, Bytes::from_request(req, state));
        let bytes = reading
            .await
            .map_err(|_| {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the body did not arrive in time")
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is too large")
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the body could not be read")
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Path parameters. One that is not UTF-8 once percent-decoded is a 400 naming it, in JSON like
/// every other error (axum's own answer is plain text).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::{ErrorKind, Path};
        use axum::extract::rejection::PathRejection;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    Err(ServiceError::bad_parameter(key.as_str(), "must be UTF-8 once percent-decoded").into())
                }
                _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text())),
            },
            Err(other) => Err(ApiError::new(other.status(), "invalid_path", other.body_text())),
        }
    }
}

/// Query parameters, parsed with errors that name the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = parse_query(query);
        de.map(ApiQuery)
    }
}

fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // Query strings become a JSON object of strings; handlers parse numbers with `int_param`.
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        map.insert(decode(k), serde_json::Value::from(decode(v)));
    }
    let bytes = serde_json::to_vec(&map).unwrap_or_default();
    decode(&bytes, Source::Query)
}

/// The `page` and `per_page` parameters of a list (400 naming the one that is wrong).
pub fn page_params(page: &Option<String>, per_page: &Option<String>, default_per_page: u32) -> Result<Page, ApiError> {
    let page = Page::parse(int_param(page, "page")?, int_param(per_page, "per_page")?, default_per_page);
    page.map_err(|e| ServiceError::BadParameter(e).into())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses an optional whole-number query parameter.
pub fn int_param(raw: &Option<String>, name: &str) -> Result<Option<i64>, ApiError> {
    raw.as_deref()
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ServiceError::bad_parameter(name, format!("{name} must be a whole number")).into())
        })
        .transpose()
}

/// The bearer token a request presents.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(ApiError::unauthorized)?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 512)
        .ok_or_else(ApiError::unauthorized)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(authenticate(state, bearer(parts)?).await?)
    }
}

/// The caller of the publish routes (only they take it: see [`Publisher`]).
impl FromRequestParts<AppState> for Publisher {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(authenticate_publisher(state, bearer(parts)?).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct In {
        name: String,
        retry_count: Option<i64>,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<In>(br#"{"name": "a", "retry_count": "x"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("retry_count"));
        let e = parse_json::<In>(br#"{"name": "a", "id": "x"}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("unknown_field", Some("id")));
        assert!(e.message.contains("read-only"));
        let e = parse_json::<In>(br#"{}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("missing_field", Some("name")));
        let e = parse_json::<In>(br#"{"name": "#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
        assert_eq!(percent_decode("é%C3%A9"), "éé");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Listing {
        page: Option<String>,
        per_page: Option<String>,
        window: Option<String>,
    }

    proptest::proptest! {
        /// Any query string: parsed, or a 400 naming the parameter; never a panic.
        #[test]
        fn any_query_string_is_parsed_or_named(query in ".*") {
            match parse_query::<Listing>(&query) {
                Ok(q) => {
                    let page = int_param(&q.page, "page");
                    if let Err(e) = page {
                        proptest::prop_assert_eq!(e.field.as_deref(), Some("page"));
                    }
                }
                Err(e) => {
                    proptest::prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
                }
            }
        }
    }
}
