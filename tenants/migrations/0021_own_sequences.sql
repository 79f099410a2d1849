-- Each merchant's ids come from its own sequences, one per table: a merchant's first
-- conversation is 1, and no id tells a merchant how busy the platform is (they came from
-- one platform-wide sequence, public.object_id_seq, which new rows no longer use). Ids stay
-- unique within a merchant; another merchant's objects are unreachable by any id, as always,
-- because every query runs inside this schema.
do $$
declare
    t text;
begin
    foreach t in array array['agents', 'visitors', 'conversations', 'messages', 'tags', 'notes',
                             'quick_replies', 'auto_replies', 'blacklist', 'leave_messages',
                             'page_views', 'audit_log', 'webhooks', 'webhook_deliveries',
                             'api_tokens']
    loop
        execute format('create sequence %I as bigint owned by %I.id', t || '_id_seq', t);
        execute format('select setval(%L, coalesce((select max(id) from %I), 0) + 1, false)',
                       t || '_id_seq', t);
        execute format('alter table %I alter column id set default nextval(%L::regclass)',
                       t, t || '_id_seq');
    end loop;
end
$$;
