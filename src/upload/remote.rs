//! Pictures from elsewhere, served through kefu: a product card's image, for agents and
//! visitors alike, so the pages' strict Content-Security-Policy stays (`img-src 'self'`).
//!
//! Only links kefu itself signed are fetched (`/img/{ent_id}?u=<url>&s=<signature>`, an
//! HMAC of the merchant and the URL under a key derived from the signing secret): the route
//! is not an open proxy. A fetch goes through the webhooks' guard — globally reachable
//! unicast addresses only, checked at connect time, no redirects — takes at most 10 s and
//! 2 MB, and what comes back must be a PNG, JPEG, GIF or WebP image within the upload
//! limits on its size in pixels (read from its header, nothing decoded). Good answers are
//! cached in memory (64 MB, an hour); each address may fetch 300 a merchant per 10 minutes.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{FromRef, Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use sha2::Sha256;
use tenants::EntId;

use crate::{
    auth::ctx::Door,
    http::{
        AppError, ClientMeta, Routes, Scope,
        extract::ApiQuery,
        rate::{Hit, Limiter, Rule},
    },
};

/// The largest picture fetched.
const MAX_BYTES: usize = 2 * 1024 * 1024;
/// The longest link signed.
const MAX_URL: usize = 2048;

#[derive(Clone)]
pub struct Fetched {
    pub mime: &'static str,
    pub bytes: bytes::Bytes,
}

/// Signs links and fetches what they name.
pub struct RemoteImages {
    key: [u8; 32],
    allow_private: bool,
    client: reqwest::Client,
    cache: moka::future::Cache<String, Fetched>,
}

impl RemoteImages {
    /// `secret` is the platform's signing secret; `allow_private` lifts the address guard
    /// (tests, like `webhooks_allow_private`).
    pub fn new(secret: &[u8], allow_private: bool) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"kefu remote images v1");
        Self {
            key: mac.finalize().into_bytes().into(),
            allow_private,
            client: crate::webhooks::guard::client(allow_private),
            cache: moka::future::Cache::builder()
                .weigher(|_, f: &Fetched| u32::try_from(f.bytes.len()).unwrap_or(u32::MAX))
                .max_capacity(64 * 1024 * 1024)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    fn signature(&self, ent_id: &str, url: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(ent_id.as_bytes());
        mac.update(b"\n");
        mac.update(url.as_bytes());
        let sum = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sum[..18])
    }

    /// The path serving `url` (an http(s) link) for merchant `ent_id`; `None` for anything
    /// else.
    pub fn link(&self, ent_id: &str, url: &str) -> Option<String> {
        if url.len() > MAX_URL || !crate::realtime::protocol::safe_link(url) {
            return None;
        }
        let parsed = url::Url::parse(url).ok()?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return None;
        }
        let u: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
        Some(format!("/img/{ent_id}?u={u}&s={}", self.signature(ent_id, url)))
    }

    /// Adds the signed paths of a message's pictures to its payload: `product.img_src` for
    /// `product.img`, `card.image_src` for `card.image`.
    pub fn sign_payload(&self, ent_id: &str, payload: &mut Option<serde_json::Value>) {
        let Some(payload) = payload.as_mut() else { return };
        for (part, field, signed) in [("product", "img", "img_src"), ("card", "image", "image_src")]
        {
            let Some(object) = payload.get_mut(part).and_then(|p| p.as_object_mut()) else {
                continue;
            };
            let src = object.get(field).and_then(|i| i.as_str()).and_then(|i| self.link(ent_id, i));
            if let Some(src) = src {
                object.insert(signed.into(), src.into());
            }
        }
    }

    fn verify(&self, ent_id: &str, url: &str, signature: &str) -> bool {
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(ent_id.as_bytes());
        mac.update(b"\n");
        mac.update(url.as_bytes());
        given.len() == 18 && mac.verify_truncated_left(&given).is_ok()
    }

    async fn fetch(&self, url: &str) -> Result<Fetched, String> {
        // An address written into the link is checked here; a name, when it is resolved.
        crate::webhooks::guard::check_url(url, self.allow_private)?;
        let mut res = self.client.get(url).send().await.map_err(|e| e.to_string())?;
        if res.status() != reqwest::StatusCode::OK {
            return Err(format!("answered {}", res.status()));
        }
        if res.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
            return Err("larger than 2 MB".into());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
            if bytes.len() + chunk.len() > MAX_BYTES {
                return Err("larger than 2 MB".into());
            }
            bytes.extend_from_slice(&chunk);
        }
        super::thumb::dimensions(&bytes).map_err(|e| format!("{e:?}"))?;
        let sniffed = super::sniff::sniff(&bytes, "remote").map_err(|e| format!("{e:?}"))?;
        if sniffed.kind != super::sniff::Kind::Image {
            return Err("not an image".into());
        }
        Ok(Fetched { mime: sniffed.mime, bytes: bytes.into() })
    }
}

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<RemoteImages>: FromRef<S>,
    Arc<Door>: FromRef<S>,
    Arc<Limiter>: FromRef<S>,
    crate::http::TrustedProxies: FromRef<S>,
{
    Routes::new().get("/img/{ent_id}", Scope::Public, serve)
}

#[derive(Deserialize)]
struct ImageQuery {
    u: String,
    s: String,
}

/// `GET /img/{ent_id}?u=&s=`: the picture a signed link names. 404 for a link kefu did not
/// sign (or another merchant's), 502 `image_unavailable` when it cannot be fetched or is
/// not an acceptable image, 429 past the rate limit.
async fn serve(
    State(images): State<Arc<RemoteImages>>,
    State(door): State<Arc<Door>>,
    State(limiter): State<Arc<Limiter>>,
    meta: ClientMeta,
    Path(ent_id): Path<String>,
    ApiQuery(q): ApiQuery<ImageQuery>,
) -> Result<Response, AppError> {
    if !images.verify(&ent_id, &q.u, &q.s) {
        return Err(AppError::NotFound);
    }
    let ent = EntId::parse(&ent_id).map_err(|_| AppError::NotFound)?;
    let tenant = door.tenants.by_ent_id(&ent).await?.ok_or(AppError::NotFound)?;
    let rule = Rule::per_ten_minutes("remote_images", 300);
    limiter.check(tenant.id, &[Hit::ip(rule, meta.ip)]).await?;
    let fetched =
        images.cache.try_get_with(q.u.clone(), images.fetch(&q.u)).await.map_err(|why| {
            AppError::Upstream {
            code: "image_unavailable",
            message: format!(
                "the picture could not be fetched, or is not a PNG, JPEG, GIF or WebP image ({why})"
            )
            .into(),
        }
        })?;
    let mut response = Body::from(fetched.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(fetched.mime));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_signed_per_merchant_and_url() {
        let images = RemoteImages::new(b"a secret of at least thirty-two bytes", false);
        let link = images.link("abc123", "https://shop.example/lamp.png?w=200&h=200").unwrap();
        let query = link.split_once('?').unwrap().1;
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let (u, s) = (&pairs[0].1, &pairs[1].1);
        assert_eq!(u, "https://shop.example/lamp.png?w=200&h=200");
        assert!(images.verify("abc123", u, s));
        assert!(!images.verify("xyz789", u, s), "another merchant's");
        assert!(!images.verify("abc123", "https://evil.example/x.png", s));
        assert!(!images.verify("abc123", u, "AAAA"));
        for bad in ["javascript:alert(1)", "data:image/png;base64,AAAA", "ftp://x/y.png", ""] {
            assert!(images.link("abc123", bad).is_none(), "{bad}");
        }
    }
}
