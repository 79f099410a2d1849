-- An agent's saved views of the Conversations page (src/chat/views.rs): a name and the
-- page's filters as a query string. Each agent sees their own.
create table saved_views (
    id         bigserial primary key,
    agent_id   bigint not null references agents (id) on delete cascade,
    name       text not null,
    query      text not null,
    created_at timestamptz not null default now()
);
create index saved_views_agent_idx on saved_views (agent_id, id);
