-- What the merchant's admins changed, and who: team, settings, quick and auto replies,
-- the blacklist, cleared histories. Written in the same transaction as the change.
create table audit_log (
    id         bigint primary key default nextval('public.object_id_seq'),
    agent_id   bigint,           -- no foreign key: the entry outlives the agent
    agent_name text not null,
    action     text not null,
    target     text not null default '',
    detail     jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);
create index audit_log_created_idx on audit_log (id desc);
