//! Sign-in with other providers, as stored in `public`: the providers (read here; the
//! console writes them), the flows waiting for a provider's answer (`oauth_flows`, by the
//! SHA-256 of their state) and the accounts linked to users (`user_identities`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::Button;

/// `(id, slug, kind, name, issuer, client_id, client_secret, updated_at)`.
pub type ProviderRow = (i64, String, String, String, String, String, String, DateTime<Utc>);

const PROVIDER_COLUMNS: &str = "id, slug, kind, name, issuer, client_id, client_secret, updated_at";

#[tracing::instrument(name = "db.identity_providers.enabled_by_slug", skip_all)]
pub async fn enabled_provider(pool: &PgPool, slug: &str) -> sqlx::Result<Option<ProviderRow>> {
    // Constant columns only: nothing from the request is formatted in.
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {PROVIDER_COLUMNS} from public.identity_providers where slug = $1 and enabled"
    )))
    .bind(slug)
    .fetch_optional(pool)
    .await
}

/// The enabled providers, in the order admins added them.
#[tracing::instrument(name = "db.identity_providers.buttons", skip_all)]
pub async fn buttons(pool: &PgPool) -> sqlx::Result<Vec<Button>> {
    sqlx::query_as(
        "select slug, kind, name from public.identity_providers where enabled order by id",
    )
    .fetch_all(pool)
    .await
}

/// A flow on its way to the provider and back.
pub struct NewFlow<'a> {
    pub state_hash: &'a str,
    pub provider_id: i64,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub next: &'a str,
    /// Linking an account to this signed-in user (rather than signing in).
    pub link_user_id: Option<i64>,
    pub ttl_secs: f64,
}

/// Stores a new flow, forgetting the expired ones.
#[tracing::instrument(name = "db.oauth_flows.create", skip_all)]
pub async fn create_flow(conn: &mut PgConnection, f: NewFlow<'_>) -> sqlx::Result<()> {
    sqlx::query("delete from public.oauth_flows where expires_at < now()")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "insert into public.oauth_flows
             (state_hash, provider_id, nonce, pkce_verifier, next, link_user_id, expires_at)
         values ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
    )
    .bind(f.state_hash)
    .bind(f.provider_id)
    .bind(f.nonce)
    .bind(f.pkce_verifier)
    .bind(f.next)
    .bind(f.link_user_id)
    .bind(f.ttl_secs)
    .execute(conn)
    .await?;
    Ok(())
}

/// A flow taken from the table.
#[derive(sqlx::FromRow)]
pub struct Flow {
    pub provider_id: i64,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
    pub link_user_id: Option<i64>,
}

/// Takes the live flow with this state hash (a flow is finished once).
#[tracing::instrument(name = "db.oauth_flows.take", skip_all)]
pub async fn take_flow(pool: &PgPool, state_hash: &str) -> sqlx::Result<Option<Flow>> {
    sqlx::query_as(
        "delete from public.oauth_flows where state_hash = $1 and expires_at > now()
         returning provider_id, nonce, pkce_verifier, next, link_user_id",
    )
    .bind(state_hash)
    .fetch_optional(pool)
    .await
}

/// The user the provider's account `subject` is linked to, locked for the caller's change.
#[tracing::instrument(name = "db.user_identities.owner", skip_all)]
pub async fn linked_user(
    conn: &mut PgConnection,
    provider_id: i64,
    subject: &str,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "select user_id from public.user_identities where provider_id = $1 and subject = $2
         for update",
    )
    .bind(provider_id)
    .bind(subject)
    .fetch_optional(conn)
    .await
}

/// Notes a sign-in through a linked account, and the address the provider gave now.
#[tracing::instrument(name = "db.user_identities.touch", skip_all)]
pub async fn touch_identity(
    conn: &mut PgConnection,
    provider_id: i64,
    subject: &str,
    email: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "update public.user_identities set last_used_at = now(), email = $3
         where provider_id = $1 and subject = $2",
    )
    .bind(provider_id)
    .bind(subject)
    .bind(email)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user with this email (any case), and when they confirmed it.
#[tracing::instrument(name = "db.users.by_email_for_link", skip_all)]
pub async fn user_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> sqlx::Result<Option<(i64, Option<DateTime<Utc>>)>> {
    sqlx::query_as("select id, email_verified_at from public.users where lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(conn)
        .await
}

/// Links the provider's account `subject` to `user_id`, replacing the user's earlier link to
/// that provider (one account per provider). `linking`: made from the account page, so not
/// yet used to sign in.
#[tracing::instrument(name = "db.user_identities.link", skip_all)]
pub async fn link(
    conn: &mut PgConnection,
    provider_id: i64,
    subject: &str,
    user_id: i64,
    email: &str,
    linking: bool,
) -> sqlx::Result<()> {
    sqlx::query("delete from public.user_identities where user_id = $1 and provider_id = $2")
        .bind(user_id)
        .bind(provider_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "insert into public.user_identities (provider_id, subject, user_id, email, last_used_at)
         values ($1, $2, $3, $4, case when $5 then null else now() end)",
    )
    .bind(provider_id)
    .bind(subject)
    .bind(user_id)
    .bind(email)
    .bind(linking)
    .execute(conn)
    .await?;
    Ok(())
}

/// `(slug, kind, name, email, linked_at, last_used_at)` of every enabled provider and of the
/// disabled ones the user still has a link to.
pub type MyRow =
    (String, String, String, Option<String>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

#[tracing::instrument(name = "db.user_identities.mine", skip_all)]
pub async fn mine(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<MyRow>> {
    sqlx::query_as(
        "select p.slug, p.kind, p.name, i.email, i.created_at, i.last_used_at
         from public.identity_providers p
         left join public.user_identities i on i.provider_id = p.id and i.user_id = $1
         where p.enabled or i.user_id is not null
         order by p.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// Locks the user's row: whether they have a password, and how many accounts of other
/// enabled providers they have linked (their other ways in).
#[tracing::instrument(name = "db.users.other_ways_in", skip_all)]
pub async fn other_ways_in(
    conn: &mut PgConnection,
    user_id: i64,
    slug: &str,
) -> sqlx::Result<(bool, i64)> {
    sqlx::query_as(
        "select u.password_hash is not null,
                (select count(*) from public.user_identities i
                 join public.identity_providers p on p.id = i.provider_id
                 where i.user_id = u.id and p.slug <> $2 and p.enabled)
         from public.users u where u.id = $1 for update",
    )
    .bind(user_id)
    .bind(slug)
    .fetch_one(conn)
    .await
}

/// Removes the user's link to the provider `slug`; whether there was one.
#[tracing::instrument(name = "db.user_identities.unlink", skip_all)]
pub async fn unlink(conn: &mut PgConnection, user_id: i64, slug: &str) -> sqlx::Result<bool> {
    let removed = sqlx::query(
        "delete from public.user_identities i using public.identity_providers p
         where p.id = i.provider_id and p.slug = $2 and i.user_id = $1",
    )
    .bind(user_id)
    .bind(slug)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(removed > 0)
}
