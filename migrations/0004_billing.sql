-- Billing: where each merchant stands with its subscription, its Stripe customer and
-- subscription, the invoices Stripe reported, the webhook events already handled, and the
-- monthly conversation counter the plan limit is checked against.

-- The merchant's billing state (billing::BillingStatus). `status` stays the platform's own
-- switch (a super-admin's suspension); this one follows payment: suspended or canceled
-- merchants are read-only.
alter table tenants
    add column billing_status text not null default 'trialing'
        check (billing_status in ('trialing', 'active', 'past_due', 'suspended', 'canceled')),
    add column billing_changed_at timestamptz;
-- Merchants on a paid plan before billing existed had it assigned by hand.
update tenants set billing_status = 'active' where plan <> 'trial';
create index tenants_billing_due_idx on tenants (billing_status) where billing_status in ('trialing', 'past_due');

-- One Stripe customer per merchant, and its current subscription as Stripe last reported it.
create table subscriptions (
    tenant_id              bigint primary key references tenants (id) on delete cascade,
    stripe_customer_id     text not null,
    stripe_subscription_id text,
    stripe_status          text,
    price_id               text,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean not null default false,
    -- When the subscription first became past due (the grace period counts from here).
    past_due_since         timestamptz,
    updated_at             timestamptz not null default now(),
    constraint subscriptions_customer_key unique (stripe_customer_id),
    constraint subscriptions_subscription_key unique (stripe_subscription_id)
);

-- Stripe events already handled (deliveries are retried and may repeat): an event id is
-- recorded in the transaction that acts on it.
create table stripe_events (
    id           text primary key,
    type         text not null,
    tenant_id    bigint,
    created_at   timestamptz not null,
    processed_at timestamptz not null default now()
);

-- Invoices as Stripe reported them (invoice.paid / invoice.payment_failed), for the billing page.
create table invoices (
    id                 text primary key,
    tenant_id          bigint not null references tenants (id) on delete cascade,
    number             text,
    status             text not null,
    amount_due         bigint not null,
    amount_paid        bigint not null,
    currency           text not null,
    hosted_invoice_url text,
    period_start       timestamptz,
    period_end         timestamptz,
    created_at         timestamptz not null,
    updated_at         timestamptz not null default now()
);
create index invoices_tenant_idx on invoices (tenant_id, created_at desc);

-- Conversations started per merchant and UTC calendar month, incremented (only while under
-- the plan's limit) in the transaction that opens the conversation. Like usage_daily, no
-- foreign key: it is written inside tenant transactions; the purge removes it.
create table usage_monthly (
    tenant_id     bigint not null,
    month         date not null,
    conversations integer not null default 0,
    primary key (tenant_id, month)
);
