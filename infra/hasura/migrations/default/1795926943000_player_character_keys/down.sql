DROP TRIGGER player_characters_default_key ON public.player_characters;
DROP FUNCTION public.player_characters_default_key();
ALTER TABLE public.player_characters DROP CONSTRAINT player_characters_campaign_key_unique;
ALTER TABLE public.player_characters DROP COLUMN key;
ALTER TABLE public.player_characters ADD COLUMN key text
  GENERATED ALWAYS AS (trim(both '-' from regexp_replace(lower(name), '[^a-z0-9]+', '-', 'g'))) STORED;
ALTER TABLE public.player_characters ADD CONSTRAINT player_characters_campaign_key_unique UNIQUE (campaign_id, key);
