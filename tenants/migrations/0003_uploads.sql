-- Files and images sent in chats (src/upload). The id is 128 random bits in base32: it is
-- part of the URL that serves the file, so it must not be guessable.
create table uploads (
    id         text primary key check (id ~ '^[a-z2-7]{26}$'),
    kind       text not null check (kind in ('image', 'file')),
    name       text not null,
    size       bigint not null check (size > 0),
    mime       text not null,
    width      integer,
    height     integer,
    has_thumb  boolean not null default false,
    visitor_id bigint references visitors (id) on delete set null,
    agent_id   bigint references agents (id) on delete set null,
    created_at timestamptz not null default now()
);
