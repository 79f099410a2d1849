-- What full-text search indexes of a text (tenant messages' `search` column, see
-- tenants/migrations/0023_message_search.sql): the text with every CJK character set apart,
-- so that PostgreSQL's `simple` parser makes each one a word. Chinese, Japanese and Korean
-- have no spaces between words; searching "白色" is then the phrase '白' <-> '色', found in
-- "我想要白色的台灯", while Latin words stay words ("shipp:*" finds "shipping").
-- Ranges: CJK radicals and punctuation, kana, CJK extension A and unified ideographs,
-- Hangul syllables, compatibility ideographs.
create function public.kefu_search_text(t text) returns text
language sql immutable parallel safe strict
return regexp_replace(t, '([⺀-⿟぀-ヿ㐀-䶿一-鿿가-힯豈-﫿])', ' \1 ', 'g');
