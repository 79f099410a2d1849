-- Finished deliveries older than a month are pruned from the log; this finds them.
create index webhook_deliveries_done_idx on webhook_deliveries (created_at) where status <> 'pending';
