//! Signed tokens (JWT, HS256 only). Every token says what it is for (`typ`), so a token
//! minted for one purpose (choosing a workspace, later a visitor session) can never act as
//! another (an agent session). `exp`, `iat`, `aud` and `iss` are required and checked, with
//! a small leeway.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use tenants::Tenant;

use crate::http::AppError;

const ISSUER: &str = "kefu";
const AUDIENCE: &str = "kefu";
/// Clock skew tolerated when checking `exp`/`nbf`.
const LEEWAY_SECS: u64 = 10;
/// How long a user has to pick a workspace after a password check.
const SELECT_TTL: Duration = Duration::from_secs(10 * 60);
/// A proof-of-work challenge (visitor::prechat).
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// An anonymous visitor keeps their identity (and history) on this browser for a year.
const VISITOR_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// A verified visitor's token is short: the merchant's page proves the user again on every
/// visit, and a browser left behind (a shared computer) should not keep their history.
const VERIFIED_VISITOR_TTL: Duration = Duration::from_secs(24 * 3600);
/// A platform console session; short, because it can do anything.
const PLATFORM_TTL: Duration = Duration::from_secs(8 * 3600);
/// Time to type the second factor after the password.
const PLATFORM_PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// A support session inside a merchant's workspace.
const IMPERSONATION_TTL: Duration = Duration::from_secs(3600);
/// Time to open the socket after asking for a ticket.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A logged-in agent of one tenant.
    Agent,
    /// A user who passed the password check and must choose among several tenants.
    Select,
    /// An anonymous website visitor of one tenant (`sub` is the visitor's internal id).
    Visitor,
    /// A short-lived, single-use permission to open one WebSocket (`role` says whose).
    WsTicket,
    /// A platform admin's console session (password and second factor passed).
    Platform,
    /// A platform admin who passed the password check and must now give a TOTP code (or
    /// enrol one).
    PlatformPending,
    /// An agent who passed the password check and must now give a TOTP code, or enrol one
    /// because the merchant (`tid`) requires it.
    SecondFactor,
    /// A proof-of-work challenge for one visitor (`sub`) of one tenant, e.g. before a
    /// pre-chat form is taken from a busy address (visitor::prechat).
    Challenge,
}

/// What a server-side session is (auth::sessions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// An agent in one workspace.
    Agent,
    /// A platform admin's console.
    Platform,
    /// A platform admin inside a merchant's workspace, as one of its agents.
    Support,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Platform => "platform",
            Self::Support => "support",
        }
    }
}

/// Whose socket a ticket opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketRole {
    Agent,
    Visitor,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub typ: TokenKind,
    /// The tenant an agent token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<i64>,
    /// For tickets: whether `sub` is a user (agent) or a visitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<TicketRole>,
    /// For agent sessions opened by a platform admin on a merchant's behalf: that admin's
    /// user id (pages show a banner; actions are audit-logged under both names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imp: Option<i64>,
    /// The server-side session an agent, console or support token belongs to
    /// (auth::sessions); a WebSocket ticket names its agent's session too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<i64>,
    /// The session's token version this token carries (auth::sessions: renewing a session's
    /// token retires the older ones).
    #[serde(default, rename = "sv", skip_serializing_if = "Option::is_none")]
    pub session_version: Option<i32>,
    /// For the steps of a sign-in (workspace choice, second factor): the credential
    /// generation the password proved; the step fails if it has changed since.
    #[serde(default, rename = "gen", skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Unique per token.
    pub jti: String,
}

impl Claims {
    pub fn user_id(&self) -> Result<i64, AppError> {
        self.sub.parse().map_err(|_| AppError::Unauthorized)
    }
}

/// An issued token and when it stops working.
pub struct Issued {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Keys and rules for issuing and checking tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    session_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &SecretString, session_ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            session_ttl,
        }
    }

    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// How long a session of `kind` lasts.
    pub fn ttl(&self, kind: SessionKind) -> Duration {
        match kind {
            SessionKind::Agent => self.session_ttl,
            SessionKind::Platform => PLATFORM_TTL,
            SessionKind::Support => IMPERSONATION_TTL,
        }
    }

    /// The token of server-side session `sid` (opened by auth::sessions::open, which
    /// decided when it expires).
    pub fn issue_session(
        &self,
        (sid, version): (i64, i32),
        user_id: i64,
        kind: SessionKind,
        tenant: Option<&Tenant>,
        impersonator: Option<i64>,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<Issued> {
        let typ = match kind {
            SessionKind::Agent | SessionKind::Support => TokenKind::Agent,
            SessionKind::Platform => TokenKind::Platform,
        };
        let mut claims = self.claims(user_id, typ, expires_at);
        claims.tid = tenant.map(|t| t.id.0);
        claims.imp = impersonator;
        claims.sid = Some(sid);
        claims.session_version = Some(version);
        self.sign(claims)
    }

    /// The identity of a visitor of `tenant` (anonymous, or verified by the merchant).
    pub fn issue_visitor(
        &self,
        visitor_id: i64,
        tenant: &Tenant,
        verified: bool,
    ) -> anyhow::Result<Issued> {
        let ttl = if verified { VERIFIED_VISITOR_TTL } else { VISITOR_TTL };
        self.issue(visitor_id, TokenKind::Visitor, Some(tenant.id.0), ttl)
    }

    /// A ticket for one WebSocket of `subject` (a user id for agents, a visitor id); an
    /// agent's ticket names the session it was asked with, and dies with it.
    pub fn issue_ticket(
        &self,
        role: TicketRole,
        subject: i64,
        tenant: &Tenant,
        session: Option<i64>,
    ) -> anyhow::Result<Issued> {
        let mut claims = self.claims(subject, TokenKind::WsTicket, Utc::now() + TICKET_TTL);
        claims.tid = Some(tenant.id.0);
        claims.role = Some(role);
        claims.sid = session;
        self.sign(claims)
    }

    /// A proof-of-work challenge for `visitor_id`: valid five minutes, used once (the
    /// caller remembers its `jti`).
    pub fn issue_challenge(&self, visitor_id: i64, tenant: &Tenant) -> anyhow::Result<Issued> {
        self.issue(visitor_id, TokenKind::Challenge, Some(tenant.id.0), CHALLENGE_TTL)
    }

    /// Lets `user_id` pick one of their tenants without typing the password again (while
    /// their credentials stay at generation `generation`).
    pub fn issue_select(&self, user_id: i64, generation: i64) -> anyhow::Result<Issued> {
        let mut claims = self.claims(user_id, TokenKind::Select, Utc::now() + SELECT_TTL);
        claims.generation = Some(generation);
        self.sign(claims)
    }

    /// The console's step between the password and the second factor.
    pub fn issue_platform_pending(&self, user_id: i64, generation: i64) -> anyhow::Result<Issued> {
        let expires_at = Utc::now() + PLATFORM_PENDING_TTL;
        let mut claims = self.claims(user_id, TokenKind::PlatformPending, expires_at);
        claims.generation = Some(generation);
        self.sign(claims)
    }

    /// The step between an agent's password and their second factor (or its enrolment, for
    /// the merchant `tenant` that requires one).
    pub fn issue_second_factor(
        &self,
        user_id: i64,
        tenant: Option<tenants::TenantId>,
        generation: i64,
    ) -> anyhow::Result<Issued> {
        let expires_at = Utc::now() + PLATFORM_PENDING_TTL;
        let mut claims = self.claims(user_id, TokenKind::SecondFactor, expires_at);
        claims.tid = tenant.map(|t| t.0);
        claims.generation = Some(generation);
        self.sign(claims)
    }

    fn issue(
        &self,
        user_id: i64,
        typ: TokenKind,
        tid: Option<i64>,
        ttl: Duration,
    ) -> anyhow::Result<Issued> {
        let mut claims = self.claims(user_id, typ, Utc::now() + ttl);
        claims.tid = tid;
        self.sign(claims)
    }

    /// The claims every token has, for `subject`, expiring at `expires_at`.
    fn claims(&self, subject: i64, typ: TokenKind, expires_at: DateTime<Utc>) -> Claims {
        let jti: [u8; 12] = rand::random();
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: subject.to_string(),
            iat: Utc::now().timestamp() as u64,
            exp: expires_at.timestamp() as u64,
            typ,
            tid: None,
            role: None,
            imp: None,
            sid: None,
            session_version: None,
            generation: None,
            jti: hex::encode(jti),
        }
    }

    fn sign(&self, claims: Claims) -> anyhow::Result<Issued> {
        let expires_at = DateTime::from_timestamp(claims.exp as i64, 0).unwrap_or_else(Utc::now);
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(Issued { token, expires_at })
    }

    /// Checks signature, algorithm, expiry, audience, issuer and purpose.
    pub fn verify(&self, token: &str, expected: TokenKind) -> Result<Claims, AppError> {
        if token.len() > 4096 {
            return Err(AppError::Unauthorized);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                tracing::debug!(error = %e, "token rejected");
                AppError::Unauthorized
            })?;
        if data.claims.typ != expected {
            return Err(AppError::Unauthorized);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenants::{EntId, TenantId, TenantStatus};

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(&SecretString::from(secret.to_owned()), Duration::from_secs(3600))
    }

    fn tenant() -> Tenant {
        Tenant {
            id: TenantId(7),
            ent_id: EntId::parse("abc").unwrap(),
            name: "Acme".into(),
            status: TenantStatus::Active,
            plan: "trial".into(),
            trial_ends_at: None,
            schema_version: 1,
            created_at: Utc::now(),
            billing_status: "trialing".into(),
        }
    }

    #[test]
    fn agent_token_round_trip() {
        let k = keys(&"s".repeat(40));
        let issued = k
            .issue_session(
                (9, 0),
                42,
                SessionKind::Agent,
                Some(&tenant()),
                None,
                Utc::now() + chrono::Duration::hours(1),
            )
            .unwrap();
        let claims = k.verify(&issued.token, TokenKind::Agent).unwrap();
        assert_eq!(claims.user_id().unwrap(), 42);
        assert_eq!(claims.tid, Some(7));
        assert_eq!(claims.sid, Some(9));
    }

    #[test]
    fn wrong_purpose_secret_or_tampering_is_refused() {
        let k = keys(&"s".repeat(40));
        let select = k.issue_select(42, 0).unwrap();
        assert!(
            k.verify(&select.token, TokenKind::Agent).is_err(),
            "a select token is not a session"
        );
        let agent = k
            .issue_session(
                (9, 0),
                42,
                SessionKind::Agent,
                Some(&tenant()),
                None,
                Utc::now() + chrono::Duration::hours(1),
            )
            .unwrap();
        assert!(keys(&"t".repeat(40)).verify(&agent.token, TokenKind::Agent).is_err());
        let mut tampered = agent.token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert!(k.verify(&tampered, TokenKind::Agent).is_err());
        assert!(k.verify("", TokenKind::Agent).is_err());
        assert!(k.verify(&"a.b.c".repeat(2000), TokenKind::Agent).is_err());
    }

    #[test]
    fn none_algorithm_and_expired_tokens_are_refused() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let k = keys(&"s".repeat(40));
        let now = Utc::now().timestamp();
        let body = serde_json::json!({"iss":"kefu","aud":"kefu","sub":"1","iat":now,"exp":now+600,"typ":"agent","tid":7,"jti":"x"});
        let unsigned = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(body.to_string())
        );
        assert!(k.verify(&unsigned, TokenKind::Agent).is_err());
        let expired = Claims {
            iss: "kefu".into(),
            aud: "kefu".into(),
            sub: "1".into(),
            iat: (now - 7200) as u64,
            exp: (now - 3600) as u64,
            typ: TokenKind::Agent,
            tid: Some(7),
            role: None,
            imp: None,
            sid: None,
            session_version: None,
            generation: None,
            jti: "y".into(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret("s".repeat(40).as_bytes()),
        )
        .unwrap();
        assert!(k.verify(&token, TokenKind::Agent).is_err());
        let foreign = Claims {
            aud: "someone-else".into(),
            exp: (now + 600) as u64,
            iat: now as u64,
            ..expired
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &foreign,
            &EncodingKey::from_secret("s".repeat(40).as_bytes()),
        )
        .unwrap();
        assert!(k.verify(&token, TokenKind::Agent).is_err());
    }
}
