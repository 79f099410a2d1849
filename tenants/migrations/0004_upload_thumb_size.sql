-- The stored size of an upload's thumbnail, so deleting an upload (clearing a visitor's
-- history, deleting a merchant's files) gives back exactly what it counted against
-- public.tenants.storage_bytes.
alter table uploads add column thumb_size bigint not null default 0 check (thumb_size >= 0);
