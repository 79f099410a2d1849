-- API tokens (src/auth/api_tokens.rs): only the SHA-256 of each token is kept; `prefix`
-- (its first characters) tells tokens apart in lists. A token acts as the admin who
-- created it (`agent_id`) and ends when revoked.
create table api_tokens (
    id           bigint primary key default nextval('public.object_id_seq'),
    name         text not null,
    scope        text not null check (scope in ('read', 'write')),
    token_sha256 text not null unique,
    prefix       text not null,
    agent_id     bigint not null references agents (id) on delete cascade,
    created_at   timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
