-- store_messages, as in 0013, but each message's conversation is looked up by its key.
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
             where conv.id = i.c and (conv.status <> 'closed' or i.k = 'activity')
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
