-- Rich cards: a message kind for a merchant's own system to post into a conversation (an
-- order update with its details and a tracking button). Its content is in `payload.card`;
-- `body` holds a plain-text summary for previews and email. Visitors cannot send them.
-- `not valid`, as in 0013: existing rows satisfy the looser check.
alter table messages
    drop constraint messages_kind_check,
    add constraint messages_kind_check
        check (kind in ('text', 'image', 'file', 'product', 'card', 'notice', 'activity')) not valid;
