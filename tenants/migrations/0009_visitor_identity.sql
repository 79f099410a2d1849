-- Verified widget identity: the merchant's own user id for visitors its server vouched for
-- (HMAC or signed token with the merchant's identity secret), so the same person is one
-- visitor on every device; and an id a page claimed without proof, shown to agents only.
alter table visitors
    add column external_id     text,
    add column verified_at     timestamptz,
    add column claimed_user_id text;
create unique index visitors_external_id_key on visitors (external_id) where external_id is not null;
