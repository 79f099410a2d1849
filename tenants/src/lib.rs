//! Tenancy for kefu: every merchant lives in its own PostgreSQL schema (`tenant_<id>`).
//!
//! This crate owns everything that knows about that layout:
//! - [`TenantId`] / [`EntId`]: the internal numeric id and the public id used in links;
//! - [`TenantTx`]: the one door to tenant data, a transaction whose first statement pins
//!   `search_path` to the tenant's schema for that transaction only; and
//!   [`tenant_function_call`] for the few hot statements that call a function of the
//!   tenant's schema in one round trip;
//! - [`TenantMigrator`]: the per-tenant schema migrations in `tenants/migrations/`;
//! - [`provision`]: creating a tenant (row + schema + baseline) in one transaction, on a
//!   schema built ahead of time by [`spares::refill`] when one is ready;
//! - [`Registry`]: resolving a tenant from its id, `ent_id` or Host, cached with moka.

mod ids;
mod migrate;
mod provision;
mod registry;
pub mod spares;
mod tx;

pub use ids::{EntId, EntIdError, TenantId, schema_name};
pub use migrate::{
    Function, MigrateOptions, MigrateReport, Migration, MigrationError, TenantMigrator,
};
pub use provision::{NewTenant, ProvisionError, provision};
pub use registry::{LookupError, Registry, RegistryOptions, Tenant, TenantStatus};
pub use tx::{TenantTx, drop_schema, tenant_function_call};
