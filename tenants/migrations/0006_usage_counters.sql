-- store_messages also counts what it stored in public.usage_daily, in the same statement
-- (so the count commits with the messages). The tenant's lane and advisory lock already
-- serialize a tenant's batches, so the counter row adds no contention. The tenant id is the
-- low bits of the lock key (see lock_key in src/chat/writer.rs).
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
    created_at      timestamptz
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
        join conversations conv on conv.id = i.c and conv.status <> 'closed'
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
    )
    select s.id, s.conversation_id, s.sender_kind, s.client_msg_id, s.created_at
    from stored s
    order by s.id;
end
$$;
