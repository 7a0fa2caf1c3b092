-- Profiles (issue 12): a generation runs the 9 phases of `full` or the 3 of `quick` (Q1..Q3).
ALTER TABLE public.generations ADD COLUMN profile text NOT NULL DEFAULT 'full'
  CONSTRAINT generations_profile_check CHECK (profile IN ('full', 'quick'));
COMMENT ON COLUMN public.generations.profile IS 'The phase profile the run follows: full (9 phases, 1A to 3C) or quick (a lean world in 3 phases, Q1 to Q3).';
ALTER TABLE public.phase_runs DROP CONSTRAINT phase_runs_phase_check;
ALTER TABLE public.phase_runs ADD CONSTRAINT phase_runs_phase_check
  CHECK (phase IN ('1A', '1B', '1C', '2A', '2B', '2C', '3A', '3B', '3C', 'Q1', 'Q2', 'Q3'));
COMMENT ON COLUMN public.campaigns.total_phases IS 'Number of phases of the profile of the campaign''s latest generation (9: 1A to 3C; quick: 3, Q1 to Q3).';
