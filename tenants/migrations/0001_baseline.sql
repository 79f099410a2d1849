-- The per-tenant schema. Runs inside a TenantTx (the tenant's schema is the only one searched), so every object
-- created here lands in that schema; shared tables are always written `public.<table>`.
-- Ids come from the platform-wide sequence public.object_id_seq: an id names at most one row
-- of one tenant, so an id of tenant B can never address something of tenant A.
-- Enumerations are text + CHECK (per-schema enum types break sqlx's type cache).
-- No foreign keys to public tables: creating one takes a SHARE ROW EXCLUSIVE lock on the
-- referenced table, so every provisioning would block sign-ups and logins platform-wide (and
-- deadlocked concurrent sign-ups in a test). Shared references are kept by the application.

create table agents (
    id                   bigint primary key default nextval('public.object_id_seq'),
    user_id              bigint not null, -- public.users (id)
    role                 text not null check (role in ('owner', 'admin', 'agent')),
    display_name         text not null,
    avatar_url           text,
    status               text not null default 'offline' check (status in ('online', 'away', 'offline')),
    max_concurrent_chats integer not null default 10 check (max_concurrent_chats between 0 and 1000),
    disabled_at          timestamptz,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    constraint agents_user_key unique (user_id)
);

create table visitors (
    id            bigint primary key default nextval('public.object_id_seq'),
    public_id     text not null,
    name          text not null default '',
    real_name     text,
    avatar_url    text,
    email         text,
    phone         text,
    ip            inet,
    user_agent    text,
    os            text,
    browser       text,
    device        text,
    country       text,
    region        text,
    city          text,
    referrer      text,
    landing_url   text,
    extra         jsonb not null default '{}'::jsonb,
    visit_count   integer not null default 1,
    blocked_at    timestamptz,
    first_seen_at timestamptz not null default now(),
    last_seen_at  timestamptz not null default now(),
    constraint visitors_public_id_key unique (public_id)
);
create index visitors_last_seen_idx on visitors (last_seen_at desc);
create index visitors_name_idx on visitors (lower(name));

create table conversations (
    id                    bigint primary key default nextval('public.object_id_seq'),
    visitor_id            bigint not null references visitors (id) on delete cascade,
    agent_id              bigint references agents (id) on delete set null,
    status                text not null default 'queued' check (status in ('queued', 'open', 'closed')),
    last_message_id       bigint,
    last_message_at       timestamptz,
    visitor_last_read_id  bigint not null default 0,
    agent_last_read_id    bigint not null default 0,
    offline_notice_sent   boolean not null default false,
    created_at            timestamptz not null default now(),
    assigned_at           timestamptz,
    closed_at             timestamptz,
    closed_by_agent_id    bigint references agents (id) on delete set null
);
create index conversations_agent_status_idx on conversations (agent_id, status);
create index conversations_visitor_idx on conversations (visitor_id, created_at desc);
create index conversations_status_idx on conversations (status, last_message_at desc);

create table messages (
    id              bigint primary key default nextval('public.object_id_seq'),
    conversation_id bigint not null references conversations (id) on delete cascade,
    sender_kind     text not null check (sender_kind in ('visitor', 'agent', 'bot', 'system')),
    sender_agent_id bigint references agents (id) on delete set null,
    kind            text not null check (kind in ('text', 'image', 'file', 'product', 'notice')),
    body            text not null default '',
    payload         jsonb,
    client_msg_id   text,
    created_at      timestamptz not null default now()
);
create index messages_conversation_idx on messages (conversation_id, id);
create unique index messages_client_msg_key on messages (conversation_id, sender_kind, client_msg_id)
    where client_msg_id is not null;

create table tags (
    id         bigint primary key default nextval('public.object_id_seq'),
    name       text not null,
    color      text not null default '#64748b',
    created_at timestamptz not null default now()
);
create unique index tags_name_key on tags (lower(name));

create table visitor_tags (
    visitor_id bigint not null references visitors (id) on delete cascade,
    tag_id     bigint not null references tags (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (visitor_id, tag_id)
);
create index visitor_tags_tag_idx on visitor_tags (tag_id);

create table notes (
    id         bigint primary key default nextval('public.object_id_seq'),
    visitor_id bigint not null references visitors (id) on delete cascade,
    agent_id   bigint references agents (id) on delete set null,
    body       text not null,
    created_at timestamptz not null default now()
);
create index notes_visitor_idx on notes (visitor_id, created_at desc);

-- Tenant configuration as typed JSON values under well-known keys (service profile, widget,
-- messages, business hours...). Validated by the application before it is written.
create table settings (
    key        text primary key,
    value      jsonb not null,
    updated_at timestamptz not null default now()
);

create table quick_replies (
    id         bigint primary key default nextval('public.object_id_seq'),
    group_name text not null default '',
    title      text not null,
    body       text not null,
    position   integer not null default 0,
    created_at timestamptz not null default now()
);

create table auto_replies (
    id         bigint primary key default nextval('public.object_id_seq'),
    keyword    text not null,
    match_kind text not null default 'contains' check (match_kind in ('exact', 'contains')),
    reply      text not null,
    position   integer not null default 0,
    enabled    boolean not null default true,
    created_at timestamptz not null default now()
);

create table blacklist (
    id         bigint primary key default nextval('public.object_id_seq'),
    visitor_id bigint references visitors (id) on delete cascade,
    ip_range   cidr,
    reason     text not null default '',
    created_by bigint references agents (id) on delete set null,
    created_at timestamptz not null default now(),
    constraint blacklist_target check (visitor_id is not null or ip_range is not null)
);

create table leave_messages (
    id         bigint primary key default nextval('public.object_id_seq'),
    visitor_id bigint references visitors (id) on delete set null,
    name       text not null default '',
    contact    text not null default '',
    body       text not null,
    handled_at timestamptz,
    created_at timestamptz not null default now()
);

create table page_views (
    id         bigint primary key default nextval('public.object_id_seq'),
    visitor_id bigint not null references visitors (id) on delete cascade,
    url        text not null,
    title      text not null default '',
    referrer   text,
    created_at timestamptz not null default now()
);
create index page_views_visitor_idx on page_views (visitor_id, id desc);
