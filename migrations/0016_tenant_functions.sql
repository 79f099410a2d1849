-- The digest of the tenant functions (tenants/functions/*.sql) a tenant schema has applied,
-- next to its schema_version, so "is anything behind?" stays one query over public.tenants.
-- Null: applied before these files existed; the next `kefu migrate` (or start) applies them.
alter table public.tenants add column functions_digest bytea;
