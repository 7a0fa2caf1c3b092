-- A player character's key no longer fails on a name without Latin letters: the key becomes an
-- ordinary column that worldgen fills (Unicode NFKD transliteration, else "pc-<n>") and that a
-- trigger fills the same way for an insert that gives none (Hasura's player_characters insert).

ALTER TABLE public.player_characters ALTER COLUMN key DROP EXPRESSION;
ALTER TABLE public.player_characters ALTER COLUMN key SET NOT NULL;

CREATE FUNCTION public.player_characters_default_key() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  base text;
BEGIN
  IF NEW.key IS NULL OR NEW.key = '' THEN
    base := trim(both '-' from regexp_replace(
      lower(regexp_replace(normalize(NEW.name, NFKD), '[^\x01-\x7F]', '', 'g')), '[^a-z0-9]+', '-', 'g'));
    IF base = '' THEN
      base := 'pc-' || (SELECT count(*) + 1 FROM public.player_characters WHERE campaign_id = NEW.campaign_id);
    END IF;
    NEW.key := base;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER player_characters_default_key BEFORE INSERT ON public.player_characters
  FOR EACH ROW EXECUTE FUNCTION public.player_characters_default_key();

COMMENT ON COLUMN public.player_characters.key IS
  'Slug of the name (accents transliterated; "pc-<n>" when the name has no Latin letter or digit), unique in the campaign: how the model refers to the player character.';
