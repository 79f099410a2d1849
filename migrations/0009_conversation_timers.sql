-- Which merchants have conversation timers (a snooze ending, idle conversations to resolve)
-- due, and from when: the status worker (src/chat/status.rs) reads this instead of looking
-- into every tenant schema. A row is written when a conversation is snoozed until a time
-- or the merchant turns auto-resolve on; the worker moves it to the next due time or drops it.
create table conversation_timers (
    tenant_id bigint primary key,
    due_at    timestamptz not null
);
create index conversation_timers_due_idx on conversation_timers (due_at);
