-- Single sign-on from a merchant's own system (GOFLY's /other/internalToken then /sso): the
-- one-time tokens are user_tokens of their own purpose.
alter table user_tokens drop constraint user_tokens_purpose_check;
alter table user_tokens add constraint user_tokens_purpose_check
    check (purpose in ('invite', 'reset', 'verify', 'sso'));
