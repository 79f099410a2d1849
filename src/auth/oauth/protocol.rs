//! The provider side of a sign-in: where to send the browser, how to turn the code it comes
//! back with into a verified identity. OpenID Connect (any issuer, by discovery; Google is one)
//! and GitHub (OAuth 2.0 plus its REST API, github.com or a GitHub Enterprise server).
//!
//! The authorization-code exchange goes through the `oauth2` crate (PKCE S256, client secret
//! by HTTP Basic). ID tokens are checked here: signature against the issuer's JWKS (asymmetric
//! algorithms only), issuer, audience, expiry and the nonce of this sign-in.

use std::{sync::Arc, time::Duration};

use axum::http::{HeaderValue, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use moka::future::Cache;
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse as _, TokenUrl,
    basic::{
        BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
        BasicTokenType,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq as _;
use url::Url;

/// How long discovery documents and key sets are reused.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Upper bound on any provider answer read into memory.
const MAX_BODY: usize = 1 << 20;
/// Clock skew tolerated on ID token times.
const LEEWAY_SECS: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Any OpenID Connect provider, found through its discovery document.
    Oidc,
    /// Google's OpenID Connect (issuer `https://accounts.google.com`).
    Google,
    /// GitHub's OAuth apps (github.com or GitHub Enterprise Server).
    Github,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "oidc" => Some(Self::Oidc),
            "google" => Some(Self::Google),
            "github" => Some(Self::Github),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Google => "google",
            Self::Github => "github",
        }
    }

    /// The issuer (or GitHub web address) used when none is given.
    pub fn default_issuer(self) -> Option<&'static str> {
        match self {
            Self::Oidc => None,
            Self::Google => Some("https://accounts.google.com"),
            Self::Github => Some("https://github.com"),
        }
    }

    fn scopes(self) -> &'static [&'static str] {
        match self {
            Self::Oidc | Self::Google => &["openid", "email", "profile"],
            Self::Github => &["read:user", "user:email"],
        }
    }
}

/// A configured provider, as the sign-in needs it.
#[derive(Clone, Debug)]
pub struct Provider {
    pub id: i64,
    pub slug: String,
    pub kind: Kind,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Changes whenever the row does: cached metadata is keyed by it.
    pub version: chrono::DateTime<chrono::Utc>,
}

/// Who the provider says signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Stable at the provider (`sub`, GitHub's numeric id); what an identity is linked by.
    pub subject: String,
    /// Only an address the provider says it verified.
    pub verified_email: Option<String>,
    /// An address the provider gave without vouching for it (shown, never trusted).
    pub unverified_email: Option<String>,
}

/// Why a sign-in could not be completed on the provider's side. The message is for logs
/// and for the person signing in (it names no secret).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider could not be reached or answered badly: {0}")]
    Unreachable(String),
    #[error("the provider is misconfigured: {0}")]
    Config(String),
    #[error("the provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the provider's answer did not check out: {0}")]
    Invalid(String),
}

/// Endpoints of one provider.
#[derive(Clone, Debug)]
struct Endpoints {
    authorize: Url,
    token: Url,
    /// OpenID Connect: the issuer ID tokens must name, and where its keys are.
    oidc: Option<OidcEndpoints>,
    /// GitHub: the REST API root.
    github_api: Option<Url>,
}

#[derive(Clone, Debug)]
struct OidcEndpoints {
    issuer: String,
    jwks: Url,
    userinfo: Option<Url>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

/// The token response with OpenID Connect's `id_token`.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenFields {}

type TokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type OAuthClient = Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Where to send the browser, and what the callback must check.
pub struct Started {
    pub authorize_url: Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Talks to providers: one HTTP client (no redirects, 10 s timeout) and caches of discovery
/// documents and key sets.
pub struct Providers {
    http: reqwest::Client,
    endpoints: Cache<(i64, i64), Arc<Endpoints>>,
    keys: Cache<String, Arc<JwkSet>>,
}

impl Default for Providers {
    fn default() -> Self {
        Self::new()
    }
}

impl Providers {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the provider HTTP client builds");
        Self {
            http,
            endpoints: Cache::builder().max_capacity(256).time_to_live(METADATA_TTL).build(),
            keys: Cache::builder().max_capacity(256).time_to_live(METADATA_TTL).build(),
        }
    }

    /// The authorization URL for a new sign-in with fresh state, nonce and PKCE verifier.
    pub async fn start(
        &self,
        provider: &Provider,
        redirect_uri: &str,
    ) -> Result<Started, ProviderError> {
        let endpoints = self.endpoints(provider).await?;
        let client = oauth_client(provider, &endpoints, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random();
        let mut request = client.authorize_url(CsrfToken::new_random).set_pkce_challenge(challenge);
        for scope in provider.kind.scopes() {
            request = request.add_scope(Scope::new((*scope).to_owned()));
        }
        if endpoints.oidc.is_some() {
            request = request.add_extra_param("nonce", nonce.secret().clone());
        }
        let (authorize_url, state) = request.url();
        Ok(Started {
            authorize_url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Redeems the code the browser came back with and says who signed in.
    pub async fn finish(
        &self,
        provider: &Provider,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, ProviderError> {
        let endpoints = self.endpoints(provider).await?;
        let client = oauth_client(provider, &endpoints, redirect_uri)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&Http(&self.http))
            .await
            .map_err(token_error)?;
        let access_token = token.access_token().secret();
        if let Some(oidc) = &endpoints.oidc {
            let id_token = token.extra_fields().id_token.as_deref().ok_or_else(|| {
                ProviderError::Invalid("the token response has no id_token".into())
            })?;
            let claims = self.verify_id_token(provider, oidc, id_token, nonce).await?;
            let mut identity = identity_from_claims(&claims)?;
            if identity.verified_email.is_none() && identity.unverified_email.is_none() {
                if let Some(userinfo) = &oidc.userinfo {
                    let info: Value = self.get_json(userinfo.clone(), access_token).await?;
                    if info.get("sub").and_then(Value::as_str) != Some(identity.subject.as_str()) {
                        return Err(ProviderError::Invalid(
                            "userinfo names a different subject than the ID token".into(),
                        ));
                    }
                    let from_info = identity_from_claims(&info)?;
                    identity.verified_email = from_info.verified_email;
                    identity.unverified_email = from_info.unverified_email;
                }
            }
            Ok(identity)
        } else {
            let api = endpoints.github_api.as_ref().expect("github endpoints have an API");
            self.github_identity(api, access_token).await
        }
    }

    /// Drops cached metadata of a provider (after an admin changed it).
    pub fn forget(&self) {
        self.endpoints.invalidate_all();
        self.keys.invalidate_all();
    }

    async fn endpoints(&self, provider: &Provider) -> Result<Arc<Endpoints>, ProviderError> {
        let key = (provider.id, provider.version.timestamp_micros());
        self.endpoints
            .try_get_with(key, async { self.load_endpoints(provider).await.map(Arc::new) })
            .await
            .map_err(|e: Arc<ProviderError>| match &*e {
                ProviderError::Unreachable(m) => ProviderError::Unreachable(m.clone()),
                ProviderError::Config(m) => ProviderError::Config(m.clone()),
                ProviderError::Refused(m) => ProviderError::Refused(m.clone()),
                ProviderError::Invalid(m) => ProviderError::Invalid(m.clone()),
            })
    }

    async fn load_endpoints(&self, provider: &Provider) -> Result<Endpoints, ProviderError> {
        let base = parse_url(&provider.issuer, "issuer")?;
        match provider.kind {
            Kind::Github => {
                let join = |path: &str| {
                    base.join(path).map_err(|e| ProviderError::Config(format!("{path}: {e}")))
                };
                let api = if base.host_str() == Some("github.com") {
                    parse_url("https://api.github.com/", "GitHub API")?
                } else {
                    join("/api/v3/")?
                };
                Ok(Endpoints {
                    authorize: join("/login/oauth/authorize")?,
                    token: join("/login/oauth/access_token")?,
                    oidc: None,
                    github_api: Some(api),
                })
            }
            Kind::Oidc | Kind::Google => {
                let issuer = provider.issuer.trim_end_matches('/');
                let url =
                    parse_url(&format!("{issuer}/.well-known/openid-configuration"), "issuer")?;
                let doc: Discovery = self.get_json(url, "").await?;
                // OpenID Connect Discovery §4.3: the document must be the issuer's own.
                if doc.issuer.trim_end_matches('/') != issuer {
                    return Err(ProviderError::Config(format!(
                        "the discovery document is for {:?}, not {issuer:?}",
                        doc.issuer
                    )));
                }
                Ok(Endpoints {
                    authorize: parse_url(&doc.authorization_endpoint, "authorization_endpoint")?,
                    token: parse_url(&doc.token_endpoint, "token_endpoint")?,
                    oidc: Some(OidcEndpoints {
                        issuer: doc.issuer,
                        jwks: parse_url(&doc.jwks_uri, "jwks_uri")?,
                        userinfo: doc
                            .userinfo_endpoint
                            .as_deref()
                            .map(|u| parse_url(u, "userinfo_endpoint"))
                            .transpose()?,
                    }),
                    github_api: None,
                })
            }
        }
    }

    async fn key_set(&self, url: &Url, fresh: bool) -> Result<Arc<JwkSet>, ProviderError> {
        if fresh {
            self.keys.invalidate(url.as_str()).await;
        }
        self.keys
            .try_get_with(url.to_string(), async {
                self.get_json::<JwkSet>(url.clone(), "").await.map(Arc::new)
            })
            .await
            .map_err(|e: Arc<ProviderError>| ProviderError::Unreachable(e.to_string()))
    }

    async fn verify_id_token(
        &self,
        provider: &Provider,
        oidc: &OidcEndpoints,
        id_token: &str,
        nonce: &str,
    ) -> Result<Value, ProviderError> {
        let invalid = |why: String| ProviderError::Invalid(format!("ID token: {why}"));
        let header = jsonwebtoken::decode_header(id_token).map_err(|e| invalid(e.to_string()))?;
        // Asymmetric signatures only: `none` and HMAC (which would make the client secret the
        // key) are refused.
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(invalid(format!("{:?} signatures are not accepted", header.alg)));
        }
        let mut keys = self.key_set(&oidc.jwks, false).await?;
        let pick = |keys: &JwkSet| match &header.kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        };
        let jwk = match pick(&keys) {
            Some(jwk) => jwk,
            None => {
                // The provider may have rotated its keys since they were cached.
                keys = self.key_set(&oidc.jwks, true).await?;
                pick(&keys)
                    .ok_or_else(|| invalid("signed with a key the issuer does not list".into()))?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[provider.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let mut issuers = vec![oidc.issuer.clone()];
        if provider.kind == Kind::Google {
            // Google's ID tokens may name the issuer without the scheme.
            issuers.push("accounts.google.com".to_owned());
        }
        validation.set_issuer(&issuers);
        let data = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
            .map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        let presented = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(invalid("the nonce is not this sign-in's".into()));
        }
        // With several audiences, the token must have been issued to us (OIDC Core §3.1.3.7).
        if claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1)
            && claims.get("azp").and_then(Value::as_str) != Some(provider.client_id.as_str())
        {
            return Err(invalid("issued to another party (azp)".into()));
        }
        Ok(claims)
    }

    async fn github_identity(
        &self,
        api: &Url,
        access_token: &str,
    ) -> Result<Identity, ProviderError> {
        #[derive(Deserialize)]
        struct User {
            id: i64,
            #[serde(default)]
            email: Option<String>,
        }
        #[derive(Deserialize)]
        struct Address {
            email: String,
            #[serde(default)]
            primary: bool,
            #[serde(default)]
            verified: bool,
        }
        let join = |path: &str| api.join(path).map_err(|e| ProviderError::Config(e.to_string()));
        let user: User = self.get_json(join("user")?, access_token).await?;
        let addresses: Vec<Address> = self.get_json(join("user/emails")?, access_token).await?;
        let verified = addresses
            .iter()
            .filter(|a| a.verified)
            .max_by_key(|a| a.primary)
            .map(|a| a.email.clone());
        Ok(Identity {
            subject: user.id.to_string(),
            unverified_email: if verified.is_none() { user.email } else { None },
            verified_email: verified,
        })
    }

    /// GET a JSON document (with a bearer token unless `bearer` is empty).
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        bearer: &str,
    ) -> Result<T, ProviderError> {
        let what = format!("{}{}", url.host_str().unwrap_or_default(), url.path());
        let mut request = self.http.get(url).header(header::ACCEPT, "application/json");
        if !bearer.is_empty() {
            request = request.bearer_auth(bearer);
        }
        let response =
            request.send().await.map_err(|e| ProviderError::Unreachable(format!("{what}: {e}")))?;
        let status = response.status();
        let body = read_limited(response)
            .await
            .map_err(|e| ProviderError::Unreachable(format!("{what}: {e}")))?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ProviderError::Refused(format!("{what} answered {status}")));
        }
        if !status.is_success() {
            return Err(ProviderError::Unreachable(format!("{what} answered {status}")));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Invalid(format!("{what} sent unexpected JSON: {e}")))
    }
}

fn parse_url(raw: &str, what: &str) -> Result<Url, ProviderError> {
    let url = Url::parse(raw).map_err(|e| ProviderError::Config(format!("{what} {raw:?}: {e}")))?;
    if !transport_ok(&url) {
        return Err(ProviderError::Config(format!(
            "{what} {raw:?} must use https (http only to this machine)"
        )));
    }
    Ok(url)
}

/// Providers are reached over https; plain http only on loopback (a provider on this machine,
/// as in development and tests).
pub fn transport_ok(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

fn oauth_client(
    provider: &Provider,
    endpoints: &Endpoints,
    redirect_uri: &str,
) -> Result<OAuthClient, ProviderError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| ProviderError::Config(format!("redirect URI: {e}")))?;
    Ok(Client::new(ClientId::new(provider.client_id.clone()))
        .set_client_secret(ClientSecret::new(provider.client_secret.clone()))
        .set_auth_uri(AuthUrl::from_url(endpoints.authorize.clone()))
        .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
        .set_redirect_uri(redirect))
}

/// The subject and email of ID token or userinfo claims.
fn identity_from_claims(claims: &Value) -> Result<Identity, ProviderError> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| ProviderError::Invalid("no usable subject (sub)".into()))?
        .to_owned();
    let email = claims.get("email").and_then(Value::as_str).map(str::to_owned);
    // Some providers send `"true"` as a string.
    let verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    Ok(if verified {
        Identity { subject, verified_email: email, unverified_email: None }
    } else {
        Identity { subject, verified_email: None, unverified_email: email }
    })
}

fn token_error<E: std::error::Error>(e: RequestTokenError<E, BasicErrorResponse>) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let detail = r.error_description().cloned().unwrap_or_default();
            ProviderError::Refused(format!("{} {detail}", r.error()).trim().to_owned())
        }
        RequestTokenError::Request(e) => {
            ProviderError::Unreachable(format!("token endpoint: {}", chain(&e)))
        }
        RequestTokenError::Parse(e, _) => {
            ProviderError::Invalid(format!("token endpoint sent an unexpected answer: {e}"))
        }
        RequestTokenError::Other(m) => ProviderError::Invalid(format!("token endpoint: {m}")),
    }
}

#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("{}", chain(.0))]
    Reqwest(#[from] reqwest::Error),
    #[error("{0}")]
    Http(#[from] axum::http::Error),
    #[error("the answer is larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// An error with its causes ("error sending request" alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// The `oauth2` crate's requests, sent with our reqwest client.
struct Http<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(self.0, request))
    }
}

async fn send(client: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = read_limited(response).await?;
    let mut out = axum::http::Response::builder().status(status);
    if let Some(ct) = content_type {
        out = out.header(header::CONTENT_TYPE, ct);
    } else {
        out = out.header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(out.body(body)?)
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.example.test";
    const NONCE: &str = "the-nonce-of-this-sign-in";

    /// A provider with one P-256 signing key (kid `k1`), its key set already cached.
    struct Signer {
        providers: Providers,
        provider: Provider,
        oidc: OidcEndpoints,
        key: EncodingKey,
    }

    async fn signer() -> Signer {
        let pair = rcgen::KeyPair::generate().unwrap();
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 65, "an uncompressed P-256 point");
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks: JwkSet = serde_json::from_value(json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..]),
        }]}))
        .unwrap();
        let oidc = OidcEndpoints {
            issuer: ISSUER.into(),
            jwks: Url::parse(&format!("{ISSUER}/jwks")).unwrap(),
            userinfo: None,
        };
        let providers = Providers::new();
        providers.keys.insert(oidc.jwks.to_string(), Arc::new(jwks)).await;
        let provider = Provider {
            id: 1,
            slug: "corp".into(),
            kind: Kind::Oidc,
            name: "Corp".into(),
            issuer: ISSUER.into(),
            client_id: "kefu".into(),
            client_secret: "secret".into(),
            version: chrono::Utc::now(),
        };
        let key = EncodingKey::from_ec_der(pair.serialized_der());
        Signer { providers, provider, oidc, key }
    }

    fn claims() -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": ISSUER, "aud": "kefu", "sub": "u1", "iat": now, "exp": now + 300,
               "nonce": NONCE, "email": "a@x.test", "email_verified": true})
    }

    impl Signer {
        fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = kid.map(str::to_owned);
            jsonwebtoken::encode(&header, claims, &self.key).unwrap()
        }

        async fn verify(&self, token: &str) -> Result<Value, ProviderError> {
            self.providers.verify_id_token(&self.provider, &self.oidc, token, NONCE).await
        }
    }

    #[tokio::test]
    async fn a_good_id_token_passes() {
        let s = signer().await;
        let verified = s.verify(&s.sign(&claims(), Some("k1"))).await.unwrap();
        assert_eq!(verified["sub"], "u1");
        // One key and no kid: that key.
        s.verify(&s.sign(&claims(), None)).await.unwrap();
        // Several audiences are fine when we are the authorized party.
        let mut c = claims();
        c["aud"] = json!(["kefu", "other"]);
        c["azp"] = json!("kefu");
        s.verify(&s.sign(&c, Some("k1"))).await.unwrap();
    }

    #[tokio::test]
    async fn id_tokens_that_do_not_check_out_are_refused() {
        let s = signer().await;
        let now = chrono::Utc::now().timestamp();
        let with = |key: &str, value: Value| {
            let mut c = claims();
            c[key] = value;
            c
        };
        let mut no_nonce = claims();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        for (why, c) in [
            ("another nonce", with("nonce", json!("someone-elses"))),
            ("no nonce", no_nonce),
            ("another audience", with("aud", json!("not-kefu"))),
            ("another issuer", with("iss", json!("https://evil.example"))),
            ("expired", with("exp", json!(now - 3600))),
            ("several audiences, not ours", {
                let mut c = with("aud", json!(["kefu", "other"]));
                c["azp"] = json!("other");
                c
            }),
        ] {
            let token = s.sign(&c, Some("k1"));
            assert!(matches!(s.verify(&token).await, Err(ProviderError::Invalid(_))), "{why}");
        }
        // An HMAC token "signed" with the client secret, and an unsigned one.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(s.verify(&hs).await.is_err(), "HS256");
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims()));
        assert!(s.verify(&none).await.is_err(), "alg none");
        // A signature that is not the claims'.
        let good = s.sign(&claims(), Some("k1"));
        let other = s.sign(&with("sub", json!("u2")), Some("k1"));
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
        assert!(s.verify(&forged).await.is_err(), "claims swapped under a signature");
        assert!(s.verify("not a jwt").await.is_err());
    }

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://idp.example.com",
            "http://127.0.0.1:8080",
            "http://localhost/x",
            "http://[::1]/",
        ] {
            assert!(transport_ok(&Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in ["http://idp.example.com", "http://10.0.0.1", "ftp://x", "file:///etc/passwd"] {
            assert!(!transport_ok(&Url::parse(bad).unwrap()), "{bad}");
        }
    }

    #[test]
    fn an_email_counts_only_when_the_provider_verified_it() {
        let id =
            identity_from_claims(&json!({"sub": "1", "email": "a@x.test", "email_verified": true}))
                .unwrap();
        assert_eq!(id.verified_email.as_deref(), Some("a@x.test"));
        for claims in [
            json!({"sub": "1", "email": "a@x.test"}),
            json!({"sub": "1", "email": "a@x.test", "email_verified": false}),
            json!({"sub": "1", "email": "a@x.test", "email_verified": "no"}),
        ] {
            let id = identity_from_claims(&claims).unwrap();
            assert_eq!(id.verified_email, None, "{claims}");
            assert_eq!(id.unverified_email.as_deref(), Some("a@x.test"));
        }
        let id = identity_from_claims(
            &json!({"sub": "1", "email": "a@x.test", "email_verified": "true"}),
        )
        .unwrap();
        assert_eq!(id.verified_email.as_deref(), Some("a@x.test"));
        assert!(identity_from_claims(&json!({"email": "a@x.test"})).is_err());
        assert!(identity_from_claims(&json!({"sub": ""})).is_err());
    }
}
