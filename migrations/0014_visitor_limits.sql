-- Fixed-window counters of what anonymous visitors trigger (src/http/rate.rs), shared by
-- every node. Unlogged: written on every limited request and worthless after a crash (which
-- only forgives the current windows); the purge job drops windows two days old.
create unlogged table rate_counters (
    key          text not null,
    window_start timestamptz not null,
    hits         integer not null,
    primary key (key, window_start)
);

-- Visitors' uploads count against a budget of their own, so that they can never fill the
-- team's storage (the owner's logo must always fit).
alter table tenants add column visitor_storage_bytes bigint not null default 0;
