//! Extractors whose rejections speak the API's error shape.

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use super::AppError;

/// `Json<T>` with rejections as `{"error":{…}}`: 400 `malformed_json`, 422 `invalid_body`
/// (wrong or missing fields), 415 `unsupported_media_type`, 413 `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => AppError::bad_request_status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    format!("the JSON body does not have the expected shape: {}", e.body_text()),
                ),
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
