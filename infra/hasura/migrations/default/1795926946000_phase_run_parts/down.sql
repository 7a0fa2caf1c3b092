ALTER TABLE public.phase_runs DROP COLUMN parts;
