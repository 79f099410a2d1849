-- store_messages: the message writer's one statement (src/realtime/writer.rs calls
-- `select … from tenant_<id>.store_messages(…)` as a statement of its own, an implicit
-- transaction: the advisory lock and the insert in one round trip).
--
-- This file is the function's one source. The migrator (tenants/src/migrate.rs) applies it
-- after the versioned migrations whenever its text differs from what the schema last applied,
-- so a change is an edit here, not a new copy in a migration. It must stay re-runnable
-- (`create or replace`; a changed signature drops the old one first). Its history lives in git
-- and in migrations 0002, 0006, 0013 and 0017, which defined it before this file existed.
--
-- What it does, per batch:
-- - stores the messages whose conversation is not closed (activity lines and agents' notes
--   may go into a closed one), skipping resends (same conversation, sender kind and client id);
-- - counts them in public.usage_daily, for the plan's allowance;
-- - wakes a pending or snoozed conversation a visitor writes in, and says from what.
--
-- The plan of a PL/pgSQL statement is cached generic after a few calls, and a generic plan
-- guesses 10 rows for the unnest of the batch: against a conversations table of a few
-- hundred pages the planner preferred a hash join over a sequential scan of the whole table,
-- once per batch (perf under `kefu-bench load`: a fifth of a core at 2,000 msgs/s on 1,000
-- conversations). A lateral subquery with a limit is not flattened into a join, so it is
-- always a nested loop over the batch with an index scan of conversations_pkey per message.
create or replace function store_messages(
    conversation_ids bigint[],
    sender_kinds     text[],
    sender_agent_ids bigint[],
    kinds            text[],
    bodies           text[],
    payloads         text[],
    client_msg_ids   text[],
    lock_key         bigint
) returns table (
    id              bigint,
    conversation_id bigint,
    sender_kind     text,
    client_msg_id   text,
    created_at      timestamptz,
    woken_from      text
)
language plpgsql
set search_path from current
as $$
#variable_conflict use_column
begin
    perform pg_advisory_xact_lock(lock_key);
    return query
    with stored as (
        insert into messages (conversation_id, sender_kind, sender_agent_id, kind, body, payload, client_msg_id)
        select i.c, i.s, i.a, i.k, i.b, i.p::jsonb, i.m
        from unnest(conversation_ids, sender_kinds, sender_agent_ids, kinds, bodies, payloads, client_msg_ids)
                 with ordinality as i(c, s, a, k, b, p, m, ord)
        cross join lateral (
            select from conversations conv
             where conv.id = i.c and (conv.status <> 'closed' or i.k in ('activity', 'note'))
             limit 1
        ) still_open
        order by i.ord
        on conflict (conversation_id, sender_kind, client_msg_id) where client_msg_id is not null do nothing
        returning messages.id, messages.conversation_id, messages.sender_kind, messages.client_msg_id,
                  messages.created_at
    ), counted as (
        insert into public.usage_daily as u (tenant_id, day, messages)
        select lock_key & ((1::bigint << 62) - 1), (now() at time zone 'utc')::date, count(*)
        from stored
        having count(*) > 0
        on conflict (tenant_id, day) do update set messages = u.messages + excluded.messages
    ), woken as (
        update conversations conv
           set status = case when conv.agent_id is null then 'queued' else 'open' end,
               snoozed_until = null
          from conversations old
         where old.id = conv.id
           and conv.id in (select s.conversation_id from stored s where s.sender_kind = 'visitor')
           and conv.status in ('pending', 'snoozed')
        returning conv.id, old.status
    )
    select s.id, s.conversation_id, s.sender_kind, s.client_msg_id, s.created_at,
           case when s.sender_kind = 'visitor' then w.status end
    from stored s
    left join woken w on w.id = s.conversation_id
    order by s.id;
end
$$;
