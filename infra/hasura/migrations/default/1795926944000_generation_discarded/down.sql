UPDATE public.generations SET status = 'reverted' WHERE status = 'discarded';
ALTER TABLE public.generations DROP CONSTRAINT generations_status_check;
ALTER TABLE public.generations ADD CONSTRAINT generations_status_check
  CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'reverted'));
