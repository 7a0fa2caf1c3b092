DROP TABLE public.deities;
DROP TABLE public.pantheons;
DROP TABLE public.factions;
DROP TABLE public.cultures;
DROP TABLE public.languages;
