-- Where a visitor's shown name came from, so a better source is never overwritten by a
-- worse one (src/visitor/store, `NameRank`): 1 generated ("Visitor K7QX"), 2 the page's
-- (`visitor_name` of the link or widget), 3 an agent's, 4 the visitor's own (pre-chat or
-- leave-a-message form), 5 the merchant's server (a verified identity).
alter table visitors add column name_rank smallint not null default 1;
update visitors set name_rank = case
    when external_id is not null and name !~ '^Visitor [A-Z0-9]{4}$' then 5
    when prechat is not null then 4
    when real_name is not null and real_name = name then 3
    when name !~ '^Visitor [A-Z0-9]{4}$' then 2
    else 1 end;
