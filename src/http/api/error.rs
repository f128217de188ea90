//! Every error answer is `{"error": {"code", "message", "field"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::delivery::DeliveryError;
use crate::domain::FieldError;
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_value`, `unknown_field`, `not_found`, …
    pub code: &'static str,
    /// For people; never contains a secret.
    pub message: String,
    /// The offending field (a JSON path such as `headers.X-Api-Key`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// When several fields are wrong: each of them (the first is the one above).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Every field's problem when there are several.
    pub errors: Vec<FieldProblem>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, errors: Vec::new() }
    }

    /// Each field's problem, the field's own text without its name (for a form, beside the
    /// field); one for an error about a single field.
    pub fn problems(&self) -> Vec<FieldProblem> {
        if !self.errors.is_empty() {
            return self.errors.clone();
        }
        match &self.field {
            Some(f) => vec![FieldProblem { code: self.code, field: f.clone(), message: self.message.clone() }],
            None => Vec::new(),
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Marks a required field that was not given.
    pub fn missing(mut self) -> Self {
        self.code = "missing_field";
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API token is required (Authorization: Bearer …)")
    }

    pub fn forbidden(need: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", format!("this token's role may not do this (requires {need})"))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message).field(field)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        // Prefixed with the field's name, unless the message already begins with it.
        let message = if e.message.starts_with(&format!("{} ", e.field)) {
            e.message
        } else {
            format!("{}: {}", e.field, e.message)
        };
        Self::invalid(e.field, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Self::conflict("the change conflicts with existing data"),
            StoreError::TokenNotLive => Self::unauthorized(),
            StoreError::Unavailable(msg) => {
                tracing::error!(error = %msg, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is unavailable; retry later")
            }
            other => {
                tracing::error!(error = %other, "store error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

/// The one place where a use case's failure becomes a status and a JSON body.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(e) => e.into(),
            ServiceError::Missing(e) => ApiError::from(e).missing(),
            ServiceError::Fields(all) => {
                let all: Vec<ApiError> = all.into_iter().map(ApiError::from).collect();
                let errors = all
                    .iter()
                    .map(|e| FieldProblem {
                        code: e.code,
                        field: e.field.clone().unwrap_or_default(),
                        message: e.message.clone(),
                    })
                    .collect();
                let first = all.into_iter().next().unwrap_or_else(|| Self::invalid("", "invalid input"));
                Self { errors, ..first }
            }
            ServiceError::BadParameter(e) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", e.message.clone()).field(e.field)
            }
            ServiceError::NotFound(what) => Self::not_found(what),
            ServiceError::Unauthorized => Self::unauthorized(),
            ServiceError::Forbidden(need) => Self::forbidden(&need),
            ServiceError::Conflict(why) => Self::conflict(why),
            ServiceError::Store(e) => e.into(),
            ServiceError::Delivery(DeliveryError::Store(e)) => e.into(),
            ServiceError::Delivery(e) => {
                tracing::error!(error = %e, "delivery error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code, message: self.message, field: self.field, errors: self.errors },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // An outage of the store: worth retrying soon (publishes are idempotent by event_ref).
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_outage_is_503_with_retry_after() {
        let response = ApiError::from(StoreError::Unavailable("57P01: terminating connection".into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(axum::http::header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]));
        let other = ApiError::from(StoreError::Database("42P01: no such table".into())).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(other.headers().get(axum::http::header::RETRY_AFTER).is_none());
    }
}
