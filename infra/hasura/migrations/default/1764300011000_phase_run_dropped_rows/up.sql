-- Partial success (issue 11): the rows a phase dropped to save the rest, each with its reason.
ALTER TABLE public.phase_runs ADD COLUMN dropped_rows jsonb NOT NULL DEFAULT '[]';
COMMENT ON COLUMN public.phase_runs.dropped_rows IS 'Rows left out after the repair rounds so the rest could be saved: JSON array of {table, key, reason}.';
