-- Server-side sessions: every agent, console and support session has a row, and a token is
-- accepted only while its row is live. Ending a session (logout, "sign out everywhere", a
-- password or second-factor change, a role change, disabling the agent) marks the row, so the
-- token stops working at once, whatever second it was issued in.
create table sessions (
    id             bigint primary key,
    user_id        bigint not null references users (id) on delete cascade,
    -- The workspace of an agent or support session; none for a console session.
    tenant_id      bigint references tenants (id) on delete cascade,
    kind           text not null check (kind in ('agent', 'platform', 'support')),
    -- The platform admin who opened a support session.
    impersonator_id bigint references users (id) on delete cascade,
    ip             inet,
    user_agent     text not null default '',
    created_at     timestamptz not null default now(),
    last_seen_at   timestamptz not null default now(),
    expires_at     timestamptz not null,
    -- A token names its session and this version: renewing a session's token (after a
    -- password change on that device) bumps it, so the old token stops working while the
    -- session, and the sockets it opened, go on.
    token_version  integer not null default 0,
    ended_at       timestamptz,
    ended_reason   text
);
create index sessions_user_live_idx on sessions (user_id) where ended_at is null;
create index sessions_purge_idx on sessions (expires_at);

-- Bumped by every change to how a person proves who they are (password, second factor,
-- email): a half-finished sign-in (a workspace choice, a second-factor step) that began
-- before the change cannot finish after it.
alter table users add column credential_gen bigint not null default 0;

-- Replaced by the sessions above (whole seconds could not end a session issued in the same
-- second as the change).
alter table users drop column sessions_valid_after;
