-- The welcome, offline and out-of-hours messages became rich text (sanitized HTML, see
-- src/merchant/rich_text.rs). Until now they were plain text: escape what was stored and
-- keep its line breaks (escaping as the sanitizer's serializer does), so every stored value
-- has the new form. Written out twice rather than as a helper function, so that
-- provisioning a new tenant stays two cheap updates.
update settings
   set value = to_jsonb(replace(replace(replace(replace(replace(
                   btrim(value #>> '{}'), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   E'\r', ''), E'\n', '<br>')),
       updated_at = now()
 where key in ('welcome_message', 'offline_message') and jsonb_typeof(value) = 'string';

update settings
   set value = jsonb_set(value, '{out_of_hours_message}', to_jsonb(replace(replace(replace(replace(replace(
                   btrim(value ->> 'out_of_hours_message'), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   E'\r', ''), E'\n', '<br>'))),
       updated_at = now()
 where key = 'business_hours' and jsonb_typeof(value -> 'out_of_hours_message') = 'string';
