//! CSRF protection for state-changing requests made with the session cookie.
//!
//! Double-submit: a random token lives in the `kefu_csrf` cookie (SameSite=Strict,
//! HttpOnly) and is embedded in every form; a form post must send the same value back.
//! Cookie-authenticated API calls send it in `X-CSRF-Token` (pages expose it in a
//! `<meta name="csrf-token">`). Requests carrying an `Origin` from another host are refused
//! outright. Bearer-token API calls are not exposed to CSRF and need none of this.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponseParts, ResponseParts},
};
use axum_extra::extract::CookieJar;
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq as _;

use super::AppError;

pub const COOKIE: &str = "kefu_csrf";
pub const HEADER: &str = "x-csrf-token";

/// The request's CSRF token, created when the browser has none yet. Returning it as part
/// of a response sets the cookie if it is new.
#[derive(Clone, Debug)]
pub struct CsrfToken {
    value: String,
    fresh: bool,
    secure: bool,
}

impl CsrfToken {
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let secure = parts.extensions.get::<super::client::ClientMeta>().is_some_and(|m| m.https);
        Ok(match jar.get(COOKIE).map(|c| c.value()).filter(|v| valid_shape(v)) {
            Some(value) => Self { value: value.to_owned(), fresh: false, secure },
            None => Self { value: generate(), fresh: true, secure },
        })
    }
}

impl IntoResponseParts for CsrfToken {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if self.fresh {
            let cookie = Cookie::build((COOKIE, self.value))
                .path("/")
                .http_only(true)
                .secure(self.secure)
                .same_site(SameSite::Strict)
                .build();
            if let Ok(value) = cookie.to_string().parse() {
                res.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        Ok(res)
    }
}

fn generate() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn valid_shape(v: &str) -> bool {
    v.len() == 43 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a submitted token (form field or header) against the cookie, and the `Origin`.
pub fn verify(headers: &HeaderMap, submitted: Option<&str>) -> Result<(), AppError> {
    let failed = || {
        AppError::forbidden(
            "csrf_failed",
            "the form or request is missing a valid CSRF token; reload the page and try again",
        )
    };
    check_origin(headers)?;
    let jar = CookieJar::from_headers(headers);
    let cookie = jar.get(COOKIE).map(|c| c.value().to_owned()).ok_or_else(failed)?;
    let submitted = submitted.ok_or_else(failed)?;
    if cookie.is_empty() || !bool::from(cookie.as_bytes().ct_eq(submitted.as_bytes())) {
        return Err(failed());
    }
    Ok(())
}

/// A browser always sends `Origin` on cross-site POSTs; if present it must name this host.
fn check_origin(headers: &HeaderMap) -> Result<(), AppError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
        return Err(AppError::forbidden(
            "cross_origin",
            "cross-origin requests are not allowed here",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn double_submit() {
        let token = generate();
        let cookie = format!("{COOKIE}={token}");
        assert!(verify(&headers(&[("cookie", &cookie)]), Some(&token)).is_ok());
        assert!(verify(&headers(&[("cookie", &cookie)]), Some("other")).is_err());
        assert!(verify(&headers(&[("cookie", &cookie)]), None).is_err());
        assert!(verify(&headers(&[]), Some(&token)).is_err());
        assert!(verify(&headers(&[("cookie", &format!("{COOKIE}="))]), Some("")).is_err());
    }

    #[test]
    fn foreign_origin_is_refused() {
        let token = generate();
        let cookie = format!("{COOKIE}={token}");
        let ok = headers(&[
            ("cookie", &cookie),
            ("host", "kefu.test:8081"),
            ("origin", "http://kefu.test:8081"),
        ]);
        assert!(verify(&ok, Some(&token)).is_ok());
        let evil = headers(&[
            ("cookie", &cookie),
            ("host", "kefu.test:8081"),
            ("origin", "https://evil.test"),
        ]);
        assert!(verify(&evil, Some(&token)).is_err());
        let null = headers(&[("cookie", &cookie), ("host", "kefu.test"), ("origin", "null")]);
        assert!(verify(&null, Some(&token)).is_err());
    }
}
