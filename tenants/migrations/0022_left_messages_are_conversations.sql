-- A message left while nobody was online is a conversation like any other (src/visitor/page.rs,
-- leave_message): queued for the team, listed, searched and answered in the workspace, and
-- answered by email when the visitor gave an address. `left_offline_at` marks a conversation
-- the visitor wrote while no agent could answer (the form, or chat messages after the offline
-- notice); the workspace shows it.
alter table conversations add column left_offline_at timestamptz;

-- Conversations that got the offline notice were left while offline.
update conversations set left_offline_at = created_at where offline_notice_sent;

-- Messages left before this were stored where nobody could read them: each becomes the
-- visitor's conversation now, its contact details in the visitor's profile where they fit.
do $$
declare
    r record;
    conversation bigint;
begin
    -- A message whose visitor record was deleted since gets a visitor of its own, named as
    -- it was signed, so that nothing left is lost.
    for r in select * from leave_messages where visitor_id is null loop
        insert into visitors (public_id, name)
        values ('vleft' || lpad(r.id::text, 12, '0'), coalesce(nullif(r.name, ''), 'Visitor'))
        returning id into conversation;
        update leave_messages set visitor_id = conversation where id = r.id;
    end loop;
    for r in select * from leave_messages order by id loop
        insert into conversations (visitor_id, status, left_offline_at, created_at, offline_notice_sent)
        values (r.visitor_id, 'queued', r.created_at, r.created_at, true)
        returning id into conversation;
        insert into messages (conversation_id, sender_kind, kind, body, client_msg_id, created_at)
        values (conversation, 'visitor', 'text',
                r.body || case when r.contact = '' or r.contact ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'
                               then '' else E'\n\n' || r.contact end,
                'left-' || r.id, r.created_at);
        update visitors
           set email = case when email is null and r.contact ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'
                            then lower(r.contact) else email end,
               real_name = coalesce(real_name, nullif(r.name, ''))
         where id = r.visitor_id;
    end loop;
end
$$;

drop table leave_messages;
