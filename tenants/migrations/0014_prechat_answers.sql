-- The pre-chat form's answers (src/visitor/prechat.rs): as the visitor gave them, with the
-- labels the form had then; name, email and phone also fill the record's own columns.
alter table visitors add column prechat jsonb, add column prechat_at timestamptz;
