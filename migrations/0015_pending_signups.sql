-- Sign-ups waiting for their address to be confirmed (when the platform sends email): the
-- workspace is created when the emailed link is used, so that sign-up answers the same
-- whether or not an address has an account. Only the link's SHA-256 is kept; the purge job
-- drops what expired.
create table pending_signups (
    token_hash    bytea primary key,
    email         text not null,
    company       text not null,
    password_hash text not null,
    lang          text not null,
    created_at    timestamptz not null default now(),
    expires_at    timestamptz not null
);
create index pending_signups_expires_idx on pending_signups (expires_at);
