-- Which merchants have webhook deliveries waiting, and from when: the delivery worker reads
-- this instead of looking into every tenant schema. Kept in step with each tenant's
-- webhook_deliveries by the code that queues and delivers.
create table webhook_queue (
    tenant_id       bigint primary key,
    next_attempt_at timestamptz not null
);
create index webhook_queue_due_idx on webhook_queue (next_attempt_at);
