//! One error type for every handler. It answers `{"error":{"code","message"}}` with the right
//! status; [`super::middleware::negotiate_errors`] turns the same error into a readable HTML
//! page when a browser asked for a page. 5xx causes are logged with their chain and never
//! shown to users.

use std::{borrow::Cow, collections::BTreeMap};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// Field name → what is wrong with it.
/// Messages by field name (the name of a merchant-defined form field is not static).
pub type FieldErrors = BTreeMap<Cow<'static, str>, Cow<'static, str>>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: Cow<'static, str> },
    /// A 4xx with a specific status, e.g. 422 for a JSON body of the wrong shape.
    #[error("{message}")]
    ClientError { status: StatusCode, code: &'static str, message: Cow<'static, str> },
    #[error("some fields are invalid")]
    Validation(FieldErrors),
    #[error("authentication required")]
    Unauthorized,
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("{message}")]
    Forbidden { code: &'static str, message: Cow<'static, str> },
    #[error("not found")]
    NotFound,
    #[error("no merchant with this id")]
    TenantNotFound,
    #[error("this service is paused")]
    TenantSuspended,
    #[error("{message}")]
    Conflict { code: &'static str, message: Cow<'static, str>, field: Option<&'static str> },
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// Refused by the merchant's plan or subscription (402 `plan_limit` /
    /// `subscription_inactive`, 413 `storage_limit`); the answer links the billing page.
    #[error("{message}")]
    Billing { status: StatusCode, code: &'static str, message: Cow<'static, str> },
    /// An outside service could not be reached or refused (502): Stripe (which retries
    /// webhooks), or the site a product picture is on.
    #[error("{message}")]
    Upstream { code: &'static str, message: Cow<'static, str> },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    pub fn bad_request_status(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        debug_assert!(status.is_client_error());
        Self::ClientError { status, code, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden { code, message: message.into() }
    }

    pub fn conflict(
        code: &'static str,
        field: Option<&'static str>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Conflict { code, message: message.into(), field }
    }

    /// A plan limit that an upgrade lifts.
    pub fn plan_limit(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Billing {
            status: StatusCode::PAYMENT_REQUIRED,
            code: "plan_limit",
            message: message.into(),
        }
    }

    /// A single invalid field.
    pub fn field(name: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Validation(BTreeMap::from([(Cow::Borrowed(name), message.into())]))
    }

    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::ClientError { status, .. } => *status,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } | Self::TenantSuspended => StatusCode::FORBIDDEN,
            Self::NotFound | Self::TenantNotFound => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Billing { status, .. } => *status,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::ClientError { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Billing { code, .. }
            | Self::Upstream { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::NotFound => "not_found",
            Self::TenantNotFound => "tenant_not_found",
            Self::TenantSuspended => "tenant_suspended",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "something went wrong on our side; it has been logged".to_owned(),
            other => other.to_string(),
        }
    }
}

/// The error as the negotiation middleware sees it (attached to the response).
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: BodyInner<'a>,
}

#[derive(Serialize)]
struct BodyInner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a FieldErrors>,
    /// Where the merchant can lift a billing refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    upgrade_url: Option<&'a str>,
}

/// The page that lifts plan limits and ends read-only mode.
pub const BILLING_PAGE: &str = "/app/billing";

/// The JSON error response shared by [`AppError`] and the fallback handlers.
pub fn json_error(
    status: StatusCode,
    code: &'static str,
    message: &str,
    fields: Option<&FieldErrors>,
) -> Response {
    error_response(status, code, message, fields, None)
}

fn error_response(
    status: StatusCode,
    code: &'static str,
    message: &str,
    fields: Option<&FieldErrors>,
    upgrade_url: Option<&str>,
) -> Response {
    let body = Body { error: BodyInner { code, message, fields, upgrade_url } };
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(ErrorInfo { code, message: message.to_owned() });
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if let Self::Internal(e) = &self {
            tracing::error!(error = ?e, "internal error");
        }
        if let Self::Upstream { message, .. } = &self {
            tracing::warn!(error = %message, "an upstream service failed");
        }
        let single_field;
        let fields = match &self {
            Self::Validation(fields) => Some(fields),
            Self::Conflict { field: Some(name), message, .. } => {
                single_field = BTreeMap::from([(Cow::Borrowed(*name), message.clone())]);
                Some(&single_field)
            }
            _ => None,
        };
        let upgrade_url = matches!(self, Self::Billing { .. }).then_some(BILLING_PAGE);
        let mut response =
            error_response(status, self.code(), &self.public_message(), fields, upgrade_url);
        if let Self::RateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
        }
        response
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable
            }
            _ => Self::Internal(anyhow::Error::new(e).context("database")),
        }
    }
}

impl From<tenants::LookupError> for AppError {
    fn from(e: tenants::LookupError) -> Self {
        Self::Internal(anyhow::anyhow!("tenant lookup failed: {e}"))
    }
}

/// Maps a unique-constraint violation to a domain error (`realworld-axum-sqlx`'s
/// `on_constraint`).
pub trait ResultExt<T> {
    fn on_constraint(self, name: &str, f: impl FnOnce() -> AppError) -> Result<T, AppError>;
}

impl<T, E: Into<AppError>> ResultExt<T> for Result<T, E>
where
    E: std::borrow::Borrow<sqlx::Error>,
{
    fn on_constraint(self, name: &str, f: impl FnOnce() -> AppError) -> Result<T, AppError> {
        self.map_err(|e| {
            let is_it =
                matches!(e.borrow(), sqlx::Error::Database(db) if db.constraint() == Some(name));
            if is_it { f() } else { e.into() }
        })
    }
}
