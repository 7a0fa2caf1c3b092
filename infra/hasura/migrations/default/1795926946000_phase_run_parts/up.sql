-- Parts (issue 12): what a phase's attempt already got from the model (the outline, the parts'
-- valid answers), so a retried attempt reuses them and pays for nothing twice. Cleared on success.
ALTER TABLE public.phase_runs ADD COLUMN parts jsonb;
COMMENT ON COLUMN public.phase_runs.parts IS 'Progress of a phase generated in parts while it runs: {"outline": {table: [{key, name}]} | null, "answers": {part index: rows}, "total": parts}; NULL once the phase succeeded.';
