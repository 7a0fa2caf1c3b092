DROP TABLE public.sentient_item_properties;
DROP TABLE public.item_effects;
DROP TABLE public.items;
