-- Sessions issued before this moment no longer work (set when a password is reset or set
-- anew, or an admin resets someone's two-step verification). Whole seconds: a token's `iat`
-- is in seconds, and a session issued in the same second as the change survives it.
alter table public.users add column sessions_valid_after timestamptz;
