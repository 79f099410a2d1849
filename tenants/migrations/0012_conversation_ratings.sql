-- CSAT: the visitor's rating of a closed conversation, one per conversation (the key).
create table conversation_ratings (
    conversation_id bigint primary key references conversations (id) on delete cascade,
    visitor_id      bigint not null references visitors (id) on delete cascade,
    -- The agent who had the conversation when it was rated.
    agent_id        bigint references agents (id) on delete set null,
    score           smallint not null check (score between 1 and 5),
    comment         text not null default '',
    created_at      timestamptz not null default now()
);
create index conversation_ratings_agent_idx on conversation_ratings (agent_id, created_at);
