//! Extractors whose rejections speak the API's error shape.

use axum::{
    Json,
    extract::{
        FromRequest, FromRequestParts, Path, Request,
        path::ErrorKind,
        rejection::{JsonRejection, PathRejection},
    },
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use super::AppError;

/// `Json<T>` with rejections as `{"error":{…}}`: 400 `malformed_json`, 422 `invalid_body`
/// (not an object, wrong or missing fields), 415 `unsupported_media_type`, 413
/// `payload_too_large`. Every body of this API is a JSON object: serde would otherwise also
/// read a struct from an array (`[null, null]`).
pub struct ApiJson<T>(pub T);

fn invalid_body(why: impl std::fmt::Display) -> AppError {
    AppError::bad_request_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        format!("the JSON body does not have the expected shape: {why}"),
    )
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) if !value.is_object() => Err(invalid_body("expected a JSON object")),
            Ok(Json(value)) => serde_json::from_value(value).map(Self).map_err(invalid_body),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => invalid_body(e.body_text()),
                JsonRejection::JsonSyntaxError(_) => {
                    AppError::bad_request("malformed_json", "the request body is not valid JSON")
                }
                JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    AppError::PayloadTooLarge
                }
                other => AppError::bad_request("invalid_body", other.body_text()),
            }),
        }
    }
}

/// `Query<T>` with rejections as `{"error":{…}}`: 400 `invalid_query` naming what is wrong
/// (e.g. `online=maybe`).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(q)) => Ok(Self(q)),
            Err(rejection) => Err(AppError::bad_request("invalid_query", rejection.body_text())),
        }
    }
}

/// A JSON body that may be left out entirely: an empty body is `T::default()` (for actions
/// whose fields are all optional, e.g. `POST …/suspend` with or without a reason). A body
/// that is present is held to the same rules as [`ApiJson`].
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let has_body = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v != "0");
        let typed = req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        if !has_body || !typed {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|_| AppError::PayloadTooLarge)?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(T::default()));
            }
            return Err(AppError::UnsupportedMediaType);
        }
        ApiJson::<T>::from_request(req, state).await.map(|ApiJson(v)| Self(v))
    }
}

/// The object a route's one path parameter names (`/api/v1/webhooks/{id}`), as its id type
/// (`PathId<WebhookId>`): a positive integer. Anything else is 404, exactly like the id of
/// another merchant's object; a route with more parameters than one is a bug (500).
pub struct PathId<T>(pub T);

impl<T: From<i64>, S: Send + Sync> FromRequestParts<S> for PathId<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(raw)) => super::input::path_id(&raw).map(Self),
            Err(PathRejection::FailedToDeserializePathParams(e))
                if !matches!(e.kind(), ErrorKind::WrongNumberOfParameters { .. }) =>
            {
                Err(AppError::NotFound)
            }
            Err(e) => {
                Err(AppError::Internal(anyhow::anyhow!("PathId on {}: {e}", parts.uri.path())))
            }
        }
    }
}
