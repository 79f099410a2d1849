-- Visitor records an admin merged (the same person on two devices, src/visitor/contacts):
-- `from_id` was deleted after everything of it moved to `into_id`; a browser still holding
-- a token of `from_id` continues as `into_id`.
create table visitor_merges (
    from_id   bigint primary key,
    into_id   bigint not null references visitors (id) on delete cascade,
    merged_by bigint references agents (id) on delete set null,
    merged_at timestamptz not null default now()
);
create index visitor_merges_into_idx on visitor_merges (into_id);
-- The contacts list sorts by visits.
create index visitors_visit_count_idx on visitors (visit_count desc, id desc);
