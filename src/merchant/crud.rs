//! The shape the lists a merchant's admins keep share — quick replies, auto-replies,
//! webhooks. Creating one is counted against the merchant's cap under a lock (two at once
//! cannot both take the last place); creating, changing and deleting are each audit-logged
//! in the same transaction and then drop the caches that hold the list, on every node.
//!
//! A list says what differs in a [`Kept`] impl (its store, its cap, its audit name); its
//! handlers validate their input and call [`create`], [`update`] or [`remove`].

use std::future::Future;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use tenants::TenantId;

use crate::{
    auth::ctx::{Admin, Ctx},
    http::AppError,
    realtime::bus::{Caches, Invalidation},
};

/// Which change an audit line is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
}

/// A list a merchant's admins keep.
pub trait Kept {
    type Id: Copy + Send;
    /// A validated new entry.
    type New: Send;
    /// A validated change (absent fields stay).
    type Change: Send;
    /// An entry as the API shows it.
    type Row: Serialize + Send;

    /// The audit actions' prefix (`quick_reply` → `quick_reply.create`), also the lock's name.
    const NOUN: &'static str;
    /// Most entries per merchant.
    const MAX: i64;
    /// The entries, in a sentence ("quick replies").
    const PLURAL: &'static str;

    /// What the audit log names the entry by.
    fn label(row: &Self::Row) -> &str;
    /// What the audit line records besides the name.
    fn detail(_row: &Self::Row, _action: Action) -> Value {
        json!({})
    }
    /// The cache that holds the list, if any.
    fn cached(_tenant: TenantId) -> Option<Invalidation> {
        None
    }

    fn count(conn: &mut PgConnection) -> impl Future<Output = sqlx::Result<i64>> + Send;
    fn insert(
        conn: &mut PgConnection,
        new: Self::New,
    ) -> impl Future<Output = sqlx::Result<Self::Row>> + Send;
    fn update(
        conn: &mut PgConnection,
        id: Self::Id,
        change: Self::Change,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Row>>> + Send;
    /// Deletes the entry; its label, or none if there was none.
    fn delete(
        conn: &mut PgConnection,
        id: Self::Id,
    ) -> impl Future<Output = sqlx::Result<Option<String>>> + Send;
}

/// 201 the new entry; 409 `too_many` at the cap.
pub async fn create<K: Kept>(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    caches: &Caches,
    new: K::New,
) -> Result<Response, AppError> {
    crate::db::tenant_lock(&mut tx, K::NOUN).await?;
    if K::count(&mut tx).await? >= K::MAX {
        let message = format!("a merchant keeps at most {} {}", K::MAX, K::PLURAL);
        return Err(AppError::conflict("too_many", None, message));
    }
    let row = K::insert(&mut tx, new).await?;
    let detail = K::detail(&row, Action::Create);
    let action = format!("{}.create", K::NOUN);
    crate::merchant::audit::commit(tx, &session, &action, K::label(&row), detail).await?;
    dropped::<K>(caches, session.tenant.id).await;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// 200 the changed entry; 404 if there is none.
pub async fn update<K: Kept>(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    caches: &Caches,
    id: K::Id,
    change: K::Change,
) -> Result<Json<K::Row>, AppError> {
    let row = K::update(&mut tx, id, change).await?.ok_or(AppError::NotFound)?;
    let detail = K::detail(&row, Action::Update);
    let action = format!("{}.update", K::NOUN);
    crate::merchant::audit::commit(tx, &session, &action, K::label(&row), detail).await?;
    dropped::<K>(caches, session.tenant.id).await;
    Ok(Json(row))
}

/// 204; 404 if there is none.
pub async fn remove<K: Kept>(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    caches: &Caches,
    id: K::Id,
) -> Result<StatusCode, AppError> {
    let label = K::delete(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let action = format!("{}.delete", K::NOUN);
    crate::merchant::audit::commit(tx, &session, &action, &label, json!({})).await?;
    dropped::<K>(caches, session.tenant.id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn dropped<K: Kept>(caches: &Caches, tenant: TenantId) {
    if let Some(what) = K::cached(tenant) {
        caches.invalidate(what).await;
    }
}
