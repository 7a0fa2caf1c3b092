-- Generation state for data safety (worldgen/state.py owns every status change):
-- a regeneration keeps the rows it replaces until it succeeds or is reverted, and a generation
-- can end 'reverted' (its phases undone, the previous world restored exactly).

ALTER TABLE public.generations DROP CONSTRAINT generations_status_check;
ALTER TABLE public.generations ADD CONSTRAINT generations_status_check
  CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'reverted'));

ALTER TABLE public.generations ADD COLUMN replaced_world jsonb NULL;
COMMENT ON COLUMN public.generations.replaced_world IS
  'The rows this generation replaces, by table, as they were when it started (NULL when it replaced nothing): what `worldgen revert` restores. Dropped once a later generation of the campaign succeeds.';

ALTER TABLE public.generations ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now();
COMMENT ON COLUMN public.generations.status_changed_at IS
  'When the status last changed (a generation without an execution this long after is taken as lost).';
