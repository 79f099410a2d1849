-- The super-admin console: second factors, the platform audit trail, soft deletion,
-- announcement audiences and dismissals, and per-day usage counters.

-- TOTP second factor (RFC 6238). `totp_pending_secret` holds a secret offered for
-- enrolment until the user proves they stored it; `totp_last_step` stops a code from
-- being used twice.
alter table users
    add column totp_secret         text,
    add column totp_pending_secret text,
    add column totp_enabled_at     timestamptz,
    add column totp_last_step      bigint;

-- One-time recovery codes, stored as SHA-256 digests (they are random, 50+ bits each).
create table user_recovery_codes (
    user_id   bigint not null references users (id) on delete cascade,
    code_hash text not null,
    used_at   timestamptz,
    primary key (user_id, code_hash)
);

-- What platform admins did. No foreign keys to tenants: entries outlive purged merchants.
create table platform_audit (
    id          bigint generated always as identity primary key,
    created_at  timestamptz not null default now(),
    actor_id    bigint references users (id) on delete set null,
    actor_email text not null,
    action      text not null,
    tenant_id   bigint,
    target      text not null default '',
    detail      jsonb not null default '{}'::jsonb,
    ip          text
);
create index platform_audit_created_idx on platform_audit (id desc);
create index platform_audit_tenant_idx on platform_audit (tenant_id, id desc) where tenant_id is not null;

-- A soft-deleted merchant's schema and uploads are removed after this moment by the purge
-- job (`kefu serve` runs it); until then a platform admin may restore it.
alter table tenants add column purge_after timestamptz;
create index tenants_purge_idx on tenants (purge_after) where status = 'deleted';

-- Announcements go to everyone (`plans` null) or to merchants on the listed plans.
alter table announcements add column plans text[];
create table announcement_dismissals (
    announcement_id bigint not null references announcements (id) on delete cascade,
    user_id         bigint not null references users (id) on delete cascade,
    dismissed_at    timestamptz not null default now(),
    primary key (user_id, announcement_id)
);

-- Messages and conversations per tenant and UTC day, counted in the transactions that
-- store them (the message writer's store_messages, conversation creation), so the
-- platform dashboard and plan limits never scan tenant schemas.
create table usage_daily (
    tenant_id     bigint not null,
    day           date not null,
    messages      bigint not null default 0,
    conversations bigint not null default 0,
    primary key (tenant_id, day)
);
create index usage_daily_day_idx on usage_daily (day);
