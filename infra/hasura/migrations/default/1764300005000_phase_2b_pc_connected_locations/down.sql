DROP TABLE public.buildings;
DROP TABLE public.dungeons;
DROP TABLE public.locations;
