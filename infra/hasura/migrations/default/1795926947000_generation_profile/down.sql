UPDATE public.campaigns SET total_phases = 9;
COMMENT ON COLUMN public.campaigns.total_phases IS 'Number of generation phases the world is built in (9: 1A to 3C).';
DELETE FROM public.phase_runs WHERE phase IN ('Q1', 'Q2', 'Q3');
ALTER TABLE public.phase_runs DROP CONSTRAINT phase_runs_phase_check;
ALTER TABLE public.phase_runs ADD CONSTRAINT phase_runs_phase_check
  CHECK (phase IN ('1A', '1B', '1C', '2A', '2B', '2C', '3A', '3B', '3C'));
ALTER TABLE public.generations DROP COLUMN profile;
