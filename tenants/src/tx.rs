//! The one door to tenant data.
//!
//! A [`TenantTx`] is a transaction on the shared pool whose first statement is
//! `select set_config('search_path', <tenant schema>, true)`: the tenant's schema alone, for
//! this transaction only. When the transaction ends PostgreSQL restores the session's
//! search_path, so a pooled connection never carries one tenant's path to the next borrower
//! (a session-level `SET` would). This file is the only place allowed to touch `search_path`;
//! a test fails if it appears anywhere else in the sources.

use std::ops::{Deref, DerefMut};

use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};

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
        let tx = pool.begin_with(scoped_begin(tenant)).await?;
        Ok(Self { tx, tenant })
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

    /// Begins a read-only transaction on `tenant`'s schema that sees one snapshot
    /// (repeatable read) for all it reads: an export's files agree with each other.
    pub async fn snapshot(pool: &PgPool, tenant: TenantId) -> sqlx::Result<Self> {
        let begin = AssertSqlSafe(format!(
            "begin isolation level repeatable read, read only; \
             select set_config('search_path', '{}', true)",
            schema_name(tenant)
        ));
        let tx = pool.begin_with(begin).await?;
        Ok(Self { tx, tenant })
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The tenant's tables, by name.
    pub async fn tables(&mut self) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar(
            "select tablename::text from pg_tables where schemaname = $1 order by tablename",
        )
        .bind(schema_name(self.tenant))
        .fetch_all(&mut *self.tx)
        .await
    }

    /// The statement that copies one of the tenant's [`tables`](Self::tables) out as CSV
    /// with a header, ordered by its first column (for `copy_out_raw`).
    pub fn copy_table_csv(&self, table: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(format!(
            "copy (select * from {}.{} order by 1) to stdout with (format csv, header)",
            quote_ident(&schema_name(self.tenant)),
            quote_ident(table)
        ))
    }

    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        self.tx.rollback().await
    }
}

/// A statement calling a function of `tenant`'s schema:
/// `select <columns> from tenant_<id>.<function>($1, …, $<args>)`.
///
/// The other door, for hot paths that must be one round trip: the call is a statement of its
/// own (an implicit transaction, committed when it ends), and the function, created by a
/// tenant migration with `set search_path from current`, only sees the schema it lives in.
/// `function` and `columns` are the caller's fixed text, never input.
pub fn tenant_function_call(
    tenant: TenantId,
    function: &'static str,
    columns: &'static str,
    args: usize,
) -> AssertSqlSafe<String> {
    let params: Vec<String> = (1..=args).map(|n| format!("${n}")).collect();
    AssertSqlSafe(format!(
        "select {columns} from {}.{function}({})",
        schema_name(tenant),
        params.join(", ")
    ))
}

/// Drops `tenant`'s schema and everything in it, within `conn`'s transaction (the platform's
/// purge of a deleted merchant, which removes its shared rows in the same transaction).
pub async fn drop_schema(conn: &mut PgConnection, tenant: TenantId) -> sqlx::Result<()> {
    // The schema name comes from an integer id, never from outside input.
    sqlx::query(AssertSqlSafe(format!("drop schema if exists {} cascade", schema_name(tenant))))
        .execute(conn)
        .await?;
    Ok(())
}

/// An identifier, quoted for SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `BEGIN` and the scope as one simple query: one round trip instead of two. The statement
/// is built from the tenant id (an integer), never from text that came from outside, so
/// formatting it is safe.
fn scoped_begin(tenant: TenantId) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!(
        "begin; select set_config('search_path', '{}', true)",
        schema_name(tenant)
    ))
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
