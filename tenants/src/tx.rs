//! The one door to tenant data.
//!
//! A [`TenantTx`] is a transaction on the shared pool whose first statement is
//! `select set_config('search_path', <tenant schema>, true)`: the tenant's schema alone, for
//! this transaction only. When the transaction ends PostgreSQL restores the session's
//! search_path, so a pooled connection never carries one tenant's path to the next borrower
//! (a session-level `SET` would). This file is the only place allowed to touch `search_path`;
//! a test fails if it appears anywhere else in the sources.

use std::ops::{Deref, DerefMut};

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::ids::{TenantId, schema_name};

/// A transaction scoped to one tenant's schema. Dereferences to a `PgConnection`, so query
/// functions take `&mut PgConnection` and are called with `&mut tx`.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl TenantTx {
    /// Begins a transaction on `pool` scoped to `tenant`'s schema.
    ///
    /// Callers are expected to have resolved `tenant` through the [`crate::Registry`] (which
    /// knows whether it exists and is active); this only pins the schema.
    pub async fn begin(pool: &PgPool, tenant: TenantId) -> sqlx::Result<Self> {
        let tx = pool.begin().await?;
        Self::scope(tx, tenant).await
    }

    /// Scopes an already open transaction (e.g. one that has written shared `public` rows
    /// first, as sign-up does) to `tenant`'s schema.
    pub async fn scope(
        mut tx: Transaction<'static, Postgres>,
        tenant: TenantId,
    ) -> sqlx::Result<Self> {
        sqlx::query("select set_config('search_path', $1, true)")
            .bind(schema_name(tenant))
            .execute(&mut *tx)
            .await?;
        Ok(Self { tx, tenant })
    }

    /// Like [`TenantTx::begin`], also taking the transaction-level advisory lock `lock_key`
    /// in the same statement (one round trip less on hot paths that serialize per tenant).
    pub async fn begin_locked(
        pool: &PgPool,
        tenant: TenantId,
        lock_key: i64,
    ) -> sqlx::Result<Self> {
        let mut tx = pool.begin().await?;
        sqlx::query("select set_config('search_path', $1, true), pg_advisory_xact_lock($2)")
            .bind(schema_name(tenant))
            .bind(lock_key)
            .execute(&mut *tx)
            .await?;
        Ok(Self { tx, tenant })
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        self.tx.rollback().await
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
