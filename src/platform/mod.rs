//! Platform administration. For now: creating platform admins (the console comes later).

use sqlx::PgPool;

use crate::auth::{password, validate::Email};

/// A platform admin account and the password to print once.
pub struct CreatedAdmin {
    pub user_id: i64,
    pub password: String,
    /// The email already had an account (its password was reset).
    pub existed: bool,
}

/// Makes `email` a platform admin with a freshly generated password. An existing user keeps
/// their identity and memberships; their password is replaced by the generated one.
pub async fn create_admin(pool: &PgPool, email: &Email) -> anyhow::Result<CreatedAdmin> {
    let generated = password::generate();
    let hash = password::hash(generated.clone()).await?;
    let mut tx = pool.begin().await?;
    let existing: Option<i64> =
        sqlx::query_scalar("select id from public.users where lower(email) = lower($1) for update")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let user_id = match existing {
        Some(id) => {
            sqlx::query(
                "update public.users set password_hash = $2, updated_at = now() where id = $1",
            )
            .bind(id)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
            id
        }
        None => crate::auth::store::insert_user(&mut tx, email, &hash, email.local_part()).await?,
    };
    sqlx::query("insert into public.platform_admins (user_id) values ($1) on conflict do nothing")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(CreatedAdmin { user_id, password: generated, existed: existing.is_some() })
}

pub async fn admin_count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from public.platform_admins").fetch_one(pool).await
}
