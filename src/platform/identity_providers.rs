//! Sign-in providers, as platform admins configure them: GitHub, Google, or any OpenID
//! Connect issuer. The client secret is write-only. Saving an OpenID Connect provider fetches
//! its discovery document first, so a wrong issuer is caught here rather than at a login.

use super::Platform;
use crate::http::extract::PathId;
use crate::ids::IdentityProviderId;
use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{PlatformSession, audit, store};
use crate::{
    auth::oauth::{self, Kind, Provider},
    http::{AppError, extract::ApiJson, input::text},
};
pub use store::ProviderView;

impl ProviderView {
    /// For the console's edit form.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub async fn all(state: &Platform) -> Result<Vec<ProviderView>, AppError> {
    let mut rows = store::providers(&state.door.db).await?;
    for row in &mut rows {
        row.redirect_uri = oauth::redirect_uri(&state.mail, &row.slug);
    }
    Ok(rows)
}

async fn one(state: &Platform, id: IdentityProviderId) -> Result<ProviderView, AppError> {
    let mut row = store::provider(&state.door.db, id).await?.ok_or(AppError::NotFound)?;
    row.redirect_uri = oauth::redirect_uri(&state.mail, &row.slug);
    Ok(row)
}

pub(super) async fn list(
    State(state): State<Platform>,
    _admin: PlatformSession,
) -> Result<Json<Vec<ProviderView>>, AppError> {
    Ok(Json(all(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Input {
    kind: String,
    name: String,
    /// The URL path segment (`/auth/oauth/<slug>`); made from the name when left out.
    #[serde(default)]
    slug: Option<String>,
    /// OIDC: the issuer; GitHub: the web address of a GitHub Enterprise server. Defaults
    /// for Google and GitHub.
    #[serde(default)]
    issuer: Option<String>,
    client_id: String,
    /// Required when creating; left out when updating keeps the stored one.
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

struct Checked {
    kind: Kind,
    name: String,
    slug: String,
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    enabled: bool,
}

fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(40);
    slug.trim_end_matches('-').to_owned()
}

fn valid_slug(slug: &str) -> bool {
    let mut chars = slug.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && slug.len() <= 40
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check(input: Input) -> Result<Checked, AppError> {
    let kind = Kind::parse(&input.kind)
        .ok_or_else(|| AppError::field("kind", "one of: oidc, google, github"))?;
    let name = text("name", &input.name, 60, true, false)?;
    let slug = match input.slug.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.to_owned(),
        None => slug_of(&name),
    };
    if !valid_slug(&slug) {
        return Err(AppError::field(
            "slug",
            "1–40 lowercase letters, digits and dashes, starting with a letter or digit",
        ));
    }
    let issuer = text("issuer", input.issuer.as_deref().unwrap_or(""), 500, false, false)?;
    let issuer = match (issuer.is_empty(), kind.default_issuer()) {
        (false, _) => issuer.trim_end_matches('/').to_owned(),
        (true, Some(default)) => default.to_owned(),
        (true, None) => return Err(AppError::field("issuer", "the issuer URL is required")),
    };
    let parsed =
        url::Url::parse(&issuer).map_err(|_| AppError::field("issuer", "a URL like https://…"))?;
    if !oauth::protocol::transport_ok(&parsed) || parsed.query().is_some() {
        return Err(AppError::field(
            "issuer",
            "an https:// URL without a query (http:// only for this machine)",
        ));
    }
    let client_id = text("client_id", &input.client_id, 512, true, false)?;
    let client_secret =
        input.client_secret.map(|s| text("client_secret", &s, 2048, true, false)).transpose()?;
    Ok(Checked { kind, name, slug, issuer, client_id, client_secret, enabled: input.enabled })
}

/// Fetches what a sign-in will need (discovery for OpenID Connect), so a wrong issuer is
/// refused on save.
async fn reachable(state: &Platform, c: &Checked, secret: &str) -> Result<(), AppError> {
    if c.kind == Kind::Github || !c.enabled {
        return Ok(());
    }
    let provider = Provider {
        id: 0,
        slug: c.slug.clone(),
        kind: c.kind,
        name: c.name.clone(),
        issuer: c.issuer.clone(),
        client_id: c.client_id.clone(),
        client_secret: secret.to_owned(),
        version: chrono::Utc::now(),
    };
    state
        .oauth
        .start(&provider, &oauth::redirect_uri(&state.mail, &c.slug))
        .await
        .map(drop)
        .map_err(|e| AppError::field("issuer", e.to_string()))
}

fn taken(e: sqlx::Error) -> AppError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("identity_providers_slug_key") => {
            AppError::conflict("slug_taken", Some("slug"), "another provider uses this slug")
        }
        _ => e.into(),
    }
}

/// Inserts the provider (`id` none) or replaces provider `id`'s settings; returns its id.
async fn write(
    tx: &mut sqlx::PgConnection,
    id: Option<IdentityProviderId>,
    c: &Checked,
    secret: &str,
) -> Result<IdentityProviderId, AppError> {
    let settings = store::ProviderSettings {
        slug: &c.slug,
        kind: c.kind.as_str(),
        name: &c.name,
        issuer: &c.issuer,
        client_id: &c.client_id,
        client_secret: secret,
        enabled: c.enabled,
    };
    store::write_provider(tx, id, settings).await.map_err(taken)
}

pub(super) async fn create(
    State(state): State<Platform>,
    admin: PlatformSession,
    ApiJson(input): ApiJson<Input>,
) -> Result<(StatusCode, Json<ProviderView>), AppError> {
    let c = check(input)?;
    let secret = c
        .client_secret
        .clone()
        .ok_or_else(|| AppError::field("client_secret", "this field is required"))?;
    reachable(&state, &c, &secret).await?;
    let mut tx = state.door.db.begin().await?;
    let id = write(&mut tx, None, &c, &secret).await?;
    let detail = json!({ "kind": c.kind.as_str(), "issuer": c.issuer });
    audit::record(&mut *tx, &admin, "identity_provider.create", None, &c.slug, detail).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(one(&state, id).await?)))
}

pub(super) async fn update(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<IdentityProviderId>,
    ApiJson(input): ApiJson<Input>,
) -> Result<Json<ProviderView>, AppError> {
    let c = check(input)?;
    let stored = store::provider_secret(&state.door.db, id).await?.ok_or(AppError::NotFound)?;
    let secret = c.client_secret.clone().unwrap_or(stored);
    reachable(&state, &c, &secret).await?;
    let mut tx = state.door.db.begin().await?;
    write(&mut tx, Some(id), &c, &secret).await?;
    let detail = json!({ "enabled": c.enabled, "secret_changed": c.client_secret.is_some() });
    audit::record(&mut *tx, &admin, "identity_provider.update", None, &c.slug, detail).await?;
    tx.commit().await?;
    state.caches.invalidate(crate::realtime::bus::Invalidation::SignIn).await;
    Ok(Json(one(&state, id).await?))
}

/// Deletes a provider and every link to it (users keep their other ways in).
pub(super) async fn remove(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<IdentityProviderId>,
) -> Result<StatusCode, AppError> {
    let mut tx = state.door.db.begin().await?;
    let slug = store::delete_provider(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    audit::record(&mut *tx, &admin, "identity_provider.delete", None, &slug, json!({})).await?;
    tx.commit().await?;
    state.caches.invalidate(crate::realtime::bus::Invalidation::SignIn).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_from_names() {
        assert_eq!(slug_of("Acme SSO"), "acme-sso");
        assert_eq!(slug_of("  Google  "), "google");
        assert_eq!(slug_of("企业 Okta!"), "okta");
        assert!(valid_slug("okta-2"));
        for bad in ["", "-x", "Upper", "a/b", &"x".repeat(41)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
