-- Visitors' uploads have a storage budget of their own (public.tenants.visitor_storage_bytes,
-- platform migration 0014): move what they already take out of the team's counter. The schema
-- is named after the tenant's id (tenant_<id>); a spare schema has no tenants row to update.
with visitors as (
    select coalesce(sum(size + thumb_size), 0)::bigint as bytes from uploads where visitor_id is not null
)
update public.tenants t
set visitor_storage_bytes = v.bytes,
    storage_bytes = greatest(t.storage_bytes - v.bytes, 0)
from visitors v
where t.id = substring(current_schema() from '^tenant_([0-9]+)$')::bigint;
