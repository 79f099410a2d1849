-- A conversation counts against the month's allowance once the visitor engaged (wrote a
-- second message, or an agent or the bot answered), not when it opened: throw-away visitors
-- cannot use a merchant's allowance up. Conversations from before were counted when opened.
alter table conversations add column counted_at timestamptz;
update conversations set counted_at = created_at;
