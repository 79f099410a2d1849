-- Agents' private notes in a conversation (kind 'note', sender 'agent'): shown to the team
-- only, never pushed or replayed to the visitor nor sent to webhooks; they are not an answer
-- (first response time, "unanswered", claiming, the month's allowance ignore them). The
-- colleagues a note @mentions are in `payload.mentions` (agent ids), read by the Mentions
-- view (src/chat/notes.rs). `not valid`, as in 0013: existing rows satisfy the looser check.
alter table messages
    drop constraint messages_kind_check,
    add constraint messages_kind_check
        check (kind in ('text', 'image', 'file', 'product', 'card', 'notice', 'activity', 'note')) not valid;
create index messages_mentions_idx on messages using gin ((payload -> 'mentions')) where kind = 'note';
