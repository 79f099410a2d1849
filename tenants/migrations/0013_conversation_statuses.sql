-- Conversation statuses (src/chat/status.rs): besides queued, open and closed (shown as
-- "resolved"), a conversation can be pending (waiting on the visitor) or snoozed (until
-- `snoozed_until`, or the visitor's next message when that is null).
--
-- The new checks are looser than the old ones, so existing rows satisfy them: `not valid`
-- skips re-reading every row of every tenant; new and updated rows are checked.
alter table conversations
    drop constraint conversations_status_check,
    add constraint conversations_status_check
        check (status in ('queued', 'open', 'pending', 'snoozed', 'closed')) not valid,
    add column snoozed_until timestamptz;

-- Status changes are written into the conversation as `activity` lines: for agents only
-- (never pushed or replayed to the visitor).
alter table messages
    drop constraint messages_kind_check,
    add constraint messages_kind_check
        check (kind in ('text', 'image', 'file', 'product', 'notice', 'activity')) not valid;

-- store_messages, as in 0006, and also:
-- * a visitor's stored message moves its pending or snoozed conversation back to open
--   (queued when nobody has it), and its rows say from which status (`woken_from`), for the
--   caller to announce;
-- * activity lines are stored in closed conversations too ("resolved by …" follows the
--   close).
-- The result gains a column, so the function is dropped and made again.
drop function store_messages(bigint[], text[], bigint[], text[], text[], text[], text[], bigint);
create function store_messages(
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
        join conversations conv on conv.id = i.c and (conv.status <> 'closed' or i.k = 'activity')
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

