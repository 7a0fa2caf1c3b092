ALTER TABLE public.generations DROP COLUMN status_changed_at;
ALTER TABLE public.generations DROP COLUMN replaced_world;
UPDATE public.generations SET status = 'failed' WHERE status = 'reverted';
ALTER TABLE public.generations DROP CONSTRAINT generations_status_check;
ALTER TABLE public.generations ADD CONSTRAINT generations_status_check
  CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled'));
