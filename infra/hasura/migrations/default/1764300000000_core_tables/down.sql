DROP TABLE public.model_calls;
DROP TABLE public.phase_runs;
DROP TABLE public.generations;
DROP TABLE public.player_characters;
DROP TABLE public.campaigns;
