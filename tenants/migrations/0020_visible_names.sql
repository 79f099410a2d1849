-- Names are stored as people will see them: bidirectional controls and zero-width characters
-- (which made names read backwards, look blank, or pose as another) are dropped on the way in
-- (src/http/input.rs, shown_name); this cleans those stored before.
update visitors
set name = coalesce(nullif(btrim(regexp_replace(name, '[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\u061C\u180E\uFEFF\u00AD\u115F\u1160\u3164\uFFA0]', '', 'g')), ''),
                    'Visitor ' || upper(substr(public_id, 2, 4)))
where name ~ '[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\u061C\u180E\uFEFF\u00AD\u115F\u1160\u3164\uFFA0]';

update visitors
set real_name = nullif(btrim(regexp_replace(real_name, '[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\u061C\u180E\uFEFF\u00AD\u115F\u1160\u3164\uFFA0]', '', 'g')), '')
where real_name ~ '[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\u061C\u180E\uFEFF\u00AD\u115F\u1160\u3164\uFFA0]';

update agents
set display_name = coalesce(nullif(btrim(regexp_replace(display_name, '[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\u061C\u180E\uFEFF\u00AD\u115F\u1160\u3164\uFFA0]', '', 'g')), ''), 'Agent')
where display_name ~ '[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\u061C\u180E\uFEFF\u00AD\u115F\u1160\u3164\uFFA0]';
