-- Outgoing webhooks: the merchant's endpoints and the events each wants, and the durable
-- queue of deliveries (retried with backoff; kept as the delivery log).
create table webhooks (
    id          bigint primary key default nextval('public.object_id_seq'),
    url         text not null,
    events      text[] not null,
    -- The signing secret (whsec_…): the merchant's, shown to its admins to verify deliveries.
    secret      text not null,
    description text not null default '',
    enabled     boolean not null default true,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table webhook_deliveries (
    id               bigint primary key default nextval('public.object_id_seq'),
    webhook_id       bigint not null references webhooks (id) on delete cascade,
    event_id         text not null,
    event            text not null,
    payload          jsonb not null,
    status           text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null default now(),
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz not null default now()
);
create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_log_idx on webhook_deliveries (webhook_id, id desc);
