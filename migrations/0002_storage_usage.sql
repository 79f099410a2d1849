-- Bytes of uploads (originals and thumbnails) each tenant stores, for plan limits.
alter table public.tenants add column storage_bytes bigint not null default 0;
