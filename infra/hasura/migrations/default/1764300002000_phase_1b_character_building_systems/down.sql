DROP TABLE public.backgrounds;
DROP TABLE public.feats;
DROP TABLE public.character_classes;
DROP TABLE public.races;
