-- Full-text search over what was said (src/chat/search.rs): each message's words, CJK
-- characters one by one (public.kefu_search_text), in a GIN index. Phrase queries
-- ('白' <-> '色') check adjacency against the stored vector; Latin words match by prefix.
-- Measured at 1 M messages in one merchant in docs/benchmarks.md (Search).
alter table messages
    add column search tsvector
        generated always as (to_tsvector('simple'::regconfig, public.kefu_search_text(body))) stored;
create index messages_search_idx on messages using gin (search);
