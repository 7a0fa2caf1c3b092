DROP TABLE public.celestial_bodies;
DROP TABLE public.legal_systems;
DROP TABLE public.economic_systems;
DROP TABLE public.historical_periods;
DROP TABLE public.geography_regions;
DROP TABLE public.planes;
DROP TABLE public.calendar_systems;
