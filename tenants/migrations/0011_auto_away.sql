-- An agent made away for inactivity (not by choice) comes back online with their next
-- activity or connection.
alter table agents add column auto_away boolean not null default false;
