-- A failed or cancelled generation can be discarded: its rows removed for a clean slate.
ALTER TABLE public.generations DROP CONSTRAINT generations_status_check;
ALTER TABLE public.generations ADD CONSTRAINT generations_status_check
  CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'reverted', 'discarded'));
