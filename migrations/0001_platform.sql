-- The platform schema (public): what the platform knows across tenants.
-- Tenant data lives in per-tenant schemas (see tenants/migrations/).

-- One id space for every tenant-owned row, in every tenant schema: an id names at most one
-- object platform-wide, so ids taken from one tenant can never address another tenant's rows.
create sequence object_id_seq as bigint;

create table tenants (
    id             bigint generated always as identity primary key,
    ent_id         text not null check (ent_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name           text not null check (length(name) between 1 and 200),
    status         text not null default 'active' check (status in ('active', 'suspended', 'deleted')),
    plan           text not null,
    trial_ends_at  timestamptz,
    schema_version integer not null default 0,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    suspended_at   timestamptz,
    deleted_at     timestamptz,
    constraint tenants_ent_id_key unique (ent_id)
);
create index tenants_behind_idx on tenants (schema_version) where status <> 'deleted';

create table tenant_domains (
    id          bigint generated always as identity primary key,
    tenant_id   bigint not null references tenants (id) on delete cascade,
    domain      text not null,
    verified_at timestamptz,
    created_at  timestamptz not null default now()
);
create unique index tenant_domains_domain_key on tenant_domains (lower(domain));
create index tenant_domains_tenant_idx on tenant_domains (tenant_id);

-- Global identities. One person may be an agent of several tenants; the agent rows live in
-- the tenant schemas and point here.
create table users (
    id                bigint generated always as identity primary key,
    email             text not null check (length(email) between 3 and 254),
    password_hash     text,
    display_name      text not null default '',
    email_verified_at timestamptz,
    last_login_at     timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);
create unique index users_email_key on users (lower(email));

-- Which tenants a user belongs to, so login by email works without knowing the ent_id and
-- without looking into every tenant schema. Written in the same transaction as the agent row.
create table tenant_members (
    tenant_id  bigint not null references tenants (id) on delete cascade,
    user_id    bigint not null references users (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (tenant_id, user_id)
);
create index tenant_members_user_idx on tenant_members (user_id);

create table platform_admins (
    user_id    bigint primary key references users (id) on delete cascade,
    created_at timestamptz not null default now()
);

create table system_settings (
    key        text primary key,
    value      jsonb not null,
    updated_at timestamptz not null default now()
);

create table announcements (
    id           bigint generated always as identity primary key,
    title        text not null,
    body         text not null,
    audience     text not null default 'all',
    published_at timestamptz,
    created_by   bigint references users (id) on delete set null,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);
create index announcements_published_idx on announcements (published_at desc) where published_at is not null;
