-- Sign-in through OAuth 2.0 / OpenID Connect providers (GitHub, Google, any OIDC issuer),
-- configured by platform admins. See src/auth/oauth.

-- One provider per row. `issuer` is the OpenID issuer (discovery at
-- <issuer>/.well-known/openid-configuration) for `oidc` and `google`, and the web address of
-- the GitHub instance for `github` (https://github.com or a GitHub Enterprise server).
-- `client_secret` is sent to the provider, so it is kept as is; the API never returns it.
create table identity_providers (
    id            bigint generated always as identity primary key,
    slug          text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    kind          text not null check (kind in ('oidc', 'google', 'github')),
    name          text not null check (length(name) between 1 and 60),
    issuer        text not null,
    client_id     text not null check (length(client_id) between 1 and 512),
    client_secret text not null,
    enabled       boolean not null default true,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

-- Which provider account signs in as which user: the provider's stable subject (`sub`, or
-- GitHub's numeric id), never the email, which the user may change at the provider.
create table user_identities (
    provider_id  bigint not null references identity_providers (id) on delete cascade,
    subject      text not null,
    user_id      bigint not null references users (id) on delete cascade,
    email        text not null default '',
    created_at   timestamptz not null default now(),
    last_used_at timestamptz,
    primary key (provider_id, subject)
);
-- One account per provider per user.
create unique index user_identities_user_idx on user_identities (user_id, provider_id);

-- A sign-in in progress between leaving for the provider and coming back: found by the
-- SHA-256 of its `state` (which the browser also holds in a cookie), used once, short-lived.
-- The PKCE verifier and the nonce never leave the server.
create table oauth_flows (
    state_hash    text primary key,
    provider_id   bigint not null references identity_providers (id) on delete cascade,
    nonce         text not null,
    pkce_verifier text not null,
    next          text not null default '',
    -- Set when a signed-in user links a provider account to themselves.
    link_user_id  bigint references users (id) on delete cascade,
    expires_at    timestamptz not null
);
create index oauth_flows_expires_idx on oauth_flows (expires_at);
