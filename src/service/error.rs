//! What a use case can answer besides success. The HTTP layer maps each kind to a status and
//! a JSON body in one place (`http::api::error`); the CLI prints it.

use crate::delivery::DeliveryError;
use crate::domain::FieldError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A value given is not acceptable.
    #[error("{0}")]
    Invalid(FieldError),
    /// A required value was not given.
    #[error("{0}")]
    Missing(FieldError),
    /// A query parameter is not acceptable (answered 400 rather than 422).
    #[error("{0}")]
    BadParameter(FieldError),
    /// No such object in the caller's tenant (another tenant's objects are not found either).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No valid credentials.
    #[error("a valid API token is required")]
    Unauthorized,
    /// The caller's role may not do this; names the roles that may.
    #[error("this token's role may not do this (requires {0})")]
    Forbidden(String),
    /// Several values given are not acceptable (a form's fields, all reported at once); each
    /// is `Invalid` or `Missing`, the first one first.
    #[error("{}", .0.first().map(ToString::to_string).unwrap_or_default())]
    Fields(Vec<ServiceError>),
    /// The request conflicts with the object's state; says why and what to do instead.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

impl ServiceError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(FieldError::new(field, message))
    }

    pub fn missing(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Missing(FieldError::new(field, message))
    }

    pub fn bad_parameter(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadParameter(FieldError::new(field, message))
    }
}

/// Field errors gathered while a whole input is checked, so that all of them are reported at once
/// (a form shows each beside its field); any other error ends the check.
#[derive(Default)]
pub struct Gathered {
    fields: Vec<ServiceError>,
}

impl Gathered {
    /// The value, or `None` with its field error kept; another kind of error is returned.
    pub fn take<T, E: Into<ServiceError>>(&mut self, result: Result<T, E>) -> ServiceResult<Option<T>> {
        match result.map_err(Into::into) {
            Ok(v) => Ok(Some(v)),
            Err(e @ (ServiceError::Invalid(_) | ServiceError::Missing(_))) => {
                self.fields.push(e);
                Ok(None)
            }
            Err(ServiceError::Fields(more)) => {
                self.fields.extend(more);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `Ok` when nothing was wrong; else the one error, or all of them.
    pub fn finish(mut self) -> ServiceResult<()> {
        match self.fields.len() {
            0 => Ok(()),
            1 => Err(self.fields.remove(0)),
            _ => Err(ServiceError::Fields(self.fields)),
        }
    }
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(e)
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
