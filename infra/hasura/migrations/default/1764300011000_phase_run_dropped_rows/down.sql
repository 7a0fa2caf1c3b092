ALTER TABLE public.phase_runs DROP COLUMN dropped_rows;
