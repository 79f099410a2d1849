-- Email: a durable outbox (emails are written in the transaction that decides to send them
-- and sent by a background worker, retried with backoff), and one-time links sent by email
-- (agent invitations, password resets, email verification).

create table email_outbox (
    id              bigint generated always as identity primary key,
    kind            text not null,
    tenant_id       bigint,            -- no foreign key: a merchant's purge removes its rows
    to_addr         text not null,
    subject         text not null,
    body_text       text not null,
    body_html       text not null,
    -- What the email is about (e.g. a conversation for "unanswered" reminders), checked
    -- again just before sending; and a key that keeps one such email pending at a time.
    about           jsonb not null default '{}'::jsonb,
    dedupe_key      text,
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error      text,
    sent_at         timestamptz,
    -- Given up (too many failures) or no longer wanted (the reminder was answered).
    dropped_at      timestamptz,
    created_at      timestamptz not null default now()
);
create index email_outbox_due_idx on email_outbox (next_attempt_at) where sent_at is null and dropped_at is null;
create unique index email_outbox_pending_key on email_outbox (dedupe_key)
    where dedupe_key is not null and sent_at is null and dropped_at is null;
create index email_outbox_tenant_idx on email_outbox (tenant_id, created_at desc) where tenant_id is not null;

-- One-time links. The token is 256 random bits; only its SHA-256 is stored.
create table user_tokens (
    token_hash bytea primary key,
    user_id    bigint not null references users (id) on delete cascade,
    purpose    text not null check (purpose in ('invite', 'reset', 'verify')),
    tenant_id  bigint,                 -- the workspace an invitation is for
    expires_at timestamptz not null,
    used_at    timestamptz,
    created_at timestamptz not null default now()
);
create index user_tokens_user_idx on user_tokens (user_id, purpose);
