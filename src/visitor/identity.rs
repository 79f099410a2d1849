//! Verified widget identity. A merchant's server vouches for its logged-in user by
//! computing `HMAC-SHA256(identity secret, user id)` (hex), or by signing a short JWT (HS256
//! with the same secret, `sub` = user id, `exp` required, optional `name`, `email`,
//! `avatar`). The widget passes the proof with the user id; a visitor proven this way is the
//! same visitor on every device and sees their history there.
//!
//! A user id claimed without a valid proof never reveals anything: the visitor stays
//! anonymous and agents see the id marked unverified. Where the merchant switched
//! enforcement on (`identity_required`), such a claim is refused instead. Visitors who claim
//! nothing (people not logged in on the merchant's site) chat anonymously either way.
//!
//! The secret is stored in the tenant's settings (it must be shown to the merchant's
//! developers). Rotating it keeps the previous secret working for a grace period, so the
//! merchant's servers can be switched over without refusing anyone.

use crate::auth::ctx::Door;
use axum::Json;
use axum::extract::FromRef;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac as _};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use sqlx::PgConnection;
use std::sync::Arc;

use crate::{
    auth::ctx::{Admin, Ctx},
    auth::validate::Email,
    http::{AppError, Routes, Scope, extract::OptionalJson},
    merchant::settings::store_setting,
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
{
    Routes::new()
        .get("/api/v1/settings/identity", Scope::Tenant, get_secret)
        .admin()
        .post("/api/v1/settings/identity_secret", Scope::Tenant, rotate_secret)
        .admin()
}

/// The settings key holding [`Secrets`]; kept out of the settings document.
pub const SECRET_KEY: &str = "identity_secret";
/// How long the previous secret keeps working after a rotation, unless told otherwise.
const DEFAULT_GRACE_HOURS: u32 = 24;
/// The longest grace period a rotation may ask for (a week).
const MAX_GRACE_HOURS: u32 = 168;
/// The longest user id accepted (the merchant's own ids: numbers, UUIDs, emails).
const MAX_USER_ID: usize = 128;
/// The longest identity token read.
const MAX_TOKEN: usize = 4096;

/// The merchant's identity secret and, after a rotation, the one before it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Secrets {
    pub current: String,
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub previous_until: Option<DateTime<Utc>>,
}

impl Secrets {
    pub async fn load(conn: &mut PgConnection) -> sqlx::Result<Option<Self>> {
        Ok(Policy::load(conn).await?.secrets)
    }

    /// The secrets a proof may be made with at `now`: the current one, then the previous
    /// one during its grace period.
    fn valid(&self, now: DateTime<Utc>) -> impl Iterator<Item = &str> {
        let previous = self
            .previous
            .as_deref()
            .filter(|_| self.previous_until.is_some_and(|until| now < until));
        std::iter::once(self.current.as_str()).chain(previous)
    }
}

/// What a session needs to know of the merchant's identity settings.
pub struct Policy {
    pub secrets: Option<Secrets>,
    /// Refuse unproven claims (only with a secret, as the settings document says).
    pub required: bool,
}

impl Policy {
    pub async fn load(conn: &mut PgConnection) -> sqlx::Result<Self> {
        let keys = [SECRET_KEY, "identity_required"];
        let rows = crate::merchant::settings::store::get_many(conn, &keys).await?;
        let mut policy = Self { secrets: None, required: false };
        for (key, value) in rows {
            if key == SECRET_KEY {
                policy.secrets =
                    serde_json::from_value::<Secrets>(value).ok().filter(|s| !s.current.is_empty());
            } else {
                policy.required = value.as_bool().unwrap_or(false);
            }
        }
        policy.required &= policy.secrets.is_some();
        Ok(policy)
    }
}

/// What a session request offers as proof of who the visitor is.
#[derive(Clone, Copy, Debug, Default)]
pub struct Claim<'a> {
    pub user_id: Option<&'a str>,
    pub user_hash: Option<&'a str>,
    pub identity_token: Option<&'a str>,
}

/// The merchant's user, as its server vouched for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// From a signed token only (an HMAC proves the id alone).
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
}

/// Who the visitor is, as far as kefu can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Nothing claimed.
    Anonymous,
    Verified(User),
    /// An id claimed without a valid proof (kept for agents, marked so).
    Unverified(String),
}

/// The claims read from an identity token.
#[derive(Deserialize)]
struct TokenClaims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
}

/// Checks `claim` against the merchant's secrets. A malformed user id is an input error;
/// a wrong, expired or unverifiable proof gives [`Identity::Unverified`].
pub fn verify(
    secrets: Option<&Secrets>,
    claim: Claim<'_>,
    now: DateTime<Utc>,
) -> Result<Identity, AppError> {
    let user_id = claim.user_id.map(user_id).transpose()?;
    let token = claim.identity_token.map(str::trim).filter(|t| !t.is_empty());
    if let Some(token) = token {
        let verified = secrets
            .and_then(|s| s.valid(now).find_map(|key| decode_token(token, key)))
            .and_then(|c| {
                let id = self::user_id(&c.sub).ok()?;
                Some(User {
                    name: c.name.as_deref().and_then(|n| crate::http::input::shown_name(n, 60)),
                    email: c
                        .email
                        .as_deref()
                        .and_then(|e| Email::parse(e).ok())
                        .map(|e| e.as_str().to_ascii_lowercase()),
                    avatar: c.avatar.filter(|u| crate::realtime::protocol::safe_link(u)),
                    id,
                })
            })
            // A token for one user and an id naming another prove nothing.
            .filter(|u| user_id.as_ref().is_none_or(|id| *id == u.id));
        return Ok(match (verified, user_id) {
            (Some(user), _) => Identity::Verified(user),
            (None, Some(id)) => Identity::Unverified(id),
            (None, None) => Identity::Unverified(String::new()),
        });
    }
    let Some(id) = user_id else {
        return Ok(Identity::Anonymous);
    };
    let hash = claim.user_hash.map(str::trim).and_then(|h| hex::decode(h).ok());
    let proven = hash.is_some_and(|hash| {
        secrets.is_some_and(|s| s.valid(now).any(|key| mac(key, &id).verify_slice(&hash).is_ok()))
    });
    Ok(if proven {
        Identity::Verified(User { id, name: None, email: None, avatar: None })
    } else {
        Identity::Unverified(id)
    })
}

/// `HMAC-SHA256(secret, user id)`, what the merchant's server computes.
fn mac(secret: &str, user_id: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(user_id.as_bytes());
    mac
}

/// The hex proof for `user_id` (what the merchant's server sends; used by tests and docs).
pub fn user_hash(secret: &str, user_id: &str) -> String {
    hex::encode(mac(secret, user_id).finalize().into_bytes())
}

fn decode_token(token: &str, secret: &str) -> Option<TokenClaims> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 10;
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<TokenClaims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| tracing::debug!(error = %e, "identity token rejected"))
    .ok()
}

/// A user id as merchants send it: trimmed, 1 to 128 characters, no control characters.
fn user_id(raw: &str) -> Result<String, AppError> {
    let id = raw.trim();
    if id.is_empty() || id.chars().count() > MAX_USER_ID || id.chars().any(char::is_control) {
        return Err(AppError::field(
            "user_id",
            format!("a user id of 1 to {MAX_USER_ID} characters without control characters"),
        ));
    }
    Ok(id.to_owned())
}

/// The refusal for an unproven claim where the merchant requires proof.
pub fn refused() -> AppError {
    AppError::bad_request_status(
        axum::http::StatusCode::UNAUTHORIZED,
        "identity_invalid",
        "this user's identity could not be verified (wrong or expired user_hash or identity_token)",
    )
}

// ---------------------------------------------------------------------------------------
// The admins' API

#[derive(Serialize)]
struct SecretOut {
    /// Empty until one is generated.
    secret: String,
    /// Until when the secret before the last rotation still works.
    previous_valid_until: Option<DateTime<Utc>>,
}

impl SecretOut {
    fn new(secrets: Option<Secrets>, now: DateTime<Utc>) -> Self {
        match secrets {
            Some(s) => Self {
                previous_valid_until: s
                    .previous_until
                    .filter(|until| *until > now && s.previous.is_some()),
                secret: s.current,
            },
            None => Self { secret: String::new(), previous_valid_until: None },
        }
    }
}

/// `GET /api/v1/settings/identity` (admins): the secret the merchant's server signs with.
async fn get_secret(Ctx { mut tx, .. }: Ctx<Admin>) -> Result<Json<SecretOut>, AppError> {
    let secrets = Secrets::load(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(SecretOut::new(secrets, Utc::now())))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    /// How long the secret being replaced keeps working (0: stops now).
    #[serde(default)]
    keep_previous_hours: Option<u32>,
}

/// `POST /api/v1/settings/identity_secret` (admins): a new secret; the one it replaces keeps
/// working for `keep_previous_hours` (24 by default).
async fn rotate_secret(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    OptionalJson(body): OptionalJson<Rotate>,
) -> Result<Json<SecretOut>, AppError> {
    let grace = body.keep_previous_hours.unwrap_or(DEFAULT_GRACE_HOURS);
    if grace > MAX_GRACE_HOURS {
        return Err(AppError::field(
            "keep_previous_hours",
            format!("0 to {MAX_GRACE_HOURS} hours"),
        ));
    }
    let now = Utc::now();
    // Serializes rotations, so two at once cannot lose the secret in between.
    crate::db::tenant_lock(&mut tx, "kefu.identity_secret").await?;
    let old = Secrets::load(&mut tx).await?;
    let bytes: [u8; 32] = rand::random();
    let secrets = Secrets {
        current: format!("idsec_{}", hex::encode(bytes)),
        previous_until: old
            .as_ref()
            .filter(|_| grace > 0)
            .map(|_| now + Duration::hours(grace.into())),
        previous: old.filter(|_| grace > 0).map(|s| s.current),
    };
    store_setting(&mut tx, SECRET_KEY, json!(secrets)).await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "identity.secret",
        "",
        json!({ "keep_previous_hours": grace }),
    )
    .await?;
    tracing::info!(
        tenant = session.tenant.id.0,
        by = session.agent.id.0,
        "identity secret rotated"
    );
    Ok(Json(SecretOut::new(Some(secrets), now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn secrets() -> Secrets {
        Secrets {
            current: "new-secret".into(),
            previous: Some("old-secret".into()),
            previous_until: None,
        }
    }

    fn token(secret: &str, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn hmac_claim<'a>(id: &'a str, hash: &'a str) -> Claim<'a> {
        Claim { user_id: Some(id), user_hash: Some(hash), identity_token: None }
    }

    #[test]
    fn hmac_proofs() {
        let now = Utc::now();
        let s = secrets();
        let good = user_hash("new-secret", "u-42");
        let verified =
            Identity::Verified(User { id: "u-42".into(), name: None, email: None, avatar: None });
        assert_eq!(verify(Some(&s), hmac_claim("u-42", &good), now).unwrap(), verified);
        assert_eq!(
            verify(Some(&s), hmac_claim(" u-42 ", &good.to_uppercase()), now).unwrap(),
            verified,
            "ids are trimmed, hex is read in either case"
        );
        let unverified = Identity::Unverified("u-43".into());
        assert_eq!(verify(Some(&s), hmac_claim("u-43", &good), now).unwrap(), unverified);
        assert_eq!(
            verify(Some(&s), Claim { user_id: Some("u-43"), ..Claim::default() }, now).unwrap(),
            unverified
        );
        assert_eq!(verify(None, hmac_claim("u-43", &good), now).unwrap(), unverified);
        assert_eq!(verify(Some(&s), hmac_claim("u-43", "zz"), now).unwrap(), unverified);
        assert_eq!(verify(Some(&s), Claim::default(), now).unwrap(), Identity::Anonymous);
        assert!(verify(Some(&s), hmac_claim("", &good), now).is_err());
        assert!(verify(Some(&s), hmac_claim(&"x".repeat(129), &good), now).is_err());
        assert!(verify(Some(&s), hmac_claim("a\u{0}b", &good), now).is_err());
    }

    #[test]
    fn the_previous_secret_works_only_during_its_grace() {
        let now = Utc::now();
        let old = user_hash("old-secret", "u-1");
        let mut s = secrets();
        assert!(matches!(
            verify(Some(&s), hmac_claim("u-1", &old), now).unwrap(),
            Identity::Unverified(_)
        ));
        s.previous_until = Some(now + Duration::hours(1));
        assert!(matches!(
            verify(Some(&s), hmac_claim("u-1", &old), now).unwrap(),
            Identity::Verified(_)
        ));
        s.previous_until = Some(now - Duration::seconds(1));
        assert!(matches!(
            verify(Some(&s), hmac_claim("u-1", &old), now).unwrap(),
            Identity::Unverified(_)
        ));
    }

    #[test]
    fn signed_tokens() {
        let now = Utc::now();
        let s = secrets();
        let exp = now.timestamp() + 600;
        let good = token(
            "new-secret",
            json!({"sub": "u-7", "exp": exp, "name": "Ada", "email": "Ada@Example.com", "avatar": "javascript:x"}),
        );
        fn claim(t: &str) -> Claim<'_> {
            Claim { identity_token: Some(t), ..Claim::default() }
        }
        let Identity::Verified(user) = verify(Some(&s), claim(&good), now).unwrap() else {
            panic!("a good token verifies")
        };
        assert_eq!(user.id, "u-7");
        assert_eq!(user.name.as_deref(), Some("Ada"));
        assert_eq!(user.email.as_deref(), Some("ada@example.com"));
        assert_eq!(user.avatar, None, "unsafe links are dropped");
        let other_id = Claim { user_id: Some("u-8"), identity_token: Some(&good), user_hash: None };
        assert_eq!(verify(Some(&s), other_id, now).unwrap(), Identity::Unverified("u-8".into()));
        let expired = token("new-secret", json!({"sub": "u-7", "exp": now.timestamp() - 60}));
        assert!(matches!(verify(Some(&s), claim(&expired), now).unwrap(), Identity::Unverified(_)));
        let no_exp = token("new-secret", json!({"sub": "u-7"}));
        assert!(matches!(verify(Some(&s), claim(&no_exp), now).unwrap(), Identity::Unverified(_)));
        let forged = token("guess", json!({"sub": "u-7", "exp": exp}));
        assert!(matches!(verify(Some(&s), claim(&forged), now).unwrap(), Identity::Unverified(_)));
        assert!(matches!(verify(Some(&s), claim("junk"), now).unwrap(), Identity::Unverified(_)));
        assert!(matches!(verify(None, claim(&good), now).unwrap(), Identity::Unverified(_)));
    }
}
