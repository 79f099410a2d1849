-- Spare tenant schemas, built ahead of sign-up so that creating a merchant does not wait for
-- the tenant migrations (see tenants/src/spares.rs). A spare is a complete `tenant_<id>`
-- schema whose id was drawn from `tenants.id`'s sequence but that has no `tenants` row yet;
-- provisioning claims one (`for update skip locked`), inserts the row with that id, and the
-- schema is the tenant's. `schema_version` is the newest tenant migration the spare has: a
-- spare left behind by a newer binary's migrations is dropped and built again, never used.
create table spare_schemas (
    tenant_id      bigint primary key,
    schema_version integer not null,
    created_at     timestamptz not null default now()
);
