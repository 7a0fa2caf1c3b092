DROP TABLE public.encounters;
DROP TABLE public.quest_hooks;
