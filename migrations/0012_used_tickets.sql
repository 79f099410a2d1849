-- Single-use WebSocket tickets when kefu runs as several nodes: redeeming a ticket records
-- its id here, so a ticket opens one socket on one node only. (A single process keeps the
-- ids in memory instead.) Tickets live 60 s; the purge job deletes rows past their expiry.
create table used_tickets (
    jti        text primary key,
    expires_at timestamptz not null
);
create index used_tickets_expires_at on used_tickets (expires_at);
