-- Secrets apart from what players may read (issue 25): gm_notes on the world tables whose rows a
-- player could meet, is_secret on the links that can be hidden. A players export leaves both out.
-- Both have a default ('' and false), so a row written without them (an older file, a hand-made insert)
-- is simply public; the tool schemas offer them and the prompts ask for them.
ALTER TABLE public.entities ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.entities.gm_notes IS 'For the game master only: the NPC''s secrets, true motives, what they hide and how to play them. Never shown to players.';
COMMENT ON COLUMN public.entities.description IS 'What the players can learn by meeting this NPC: appearance, manner, what they do and say openly, their public reputation. No secrets: those go in gm_notes.';
ALTER TABLE public.factions ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.factions.gm_notes IS 'For the game master only: what the faction really wants, its hidden operations and resources, and how to use it. Never shown to players.';
COMMENT ON COLUMN public.factions.description IS 'What the faction shows the world: its public aims, how it is seen, where it can be met. No secrets: those go in gm_notes.';
ALTER TABLE public.locations ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.locations.gm_notes IS 'For the game master only: what is hidden here, who secretly controls it, and what the party can discover. Never shown to players.';
COMMENT ON COLUMN public.locations.description IS 'What the place looks, sounds and smells like, who is there, and what adventurers can see or do openly.';
ALTER TABLE public.dungeons ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.dungeons.gm_notes IS 'For the game master only: its true layout in broad strokes, inhabitants, traps and the treasure or secret at its heart. Never shown to players.';
COMMENT ON COLUMN public.dungeons.description IS 'Its history as told, its entrance and what travellers know of it or find on arrival.';
ALTER TABLE public.buildings ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.buildings.gm_notes IS 'For the game master only: what is hidden inside, who really uses it and why. Never shown to players.';
COMMENT ON COLUMN public.buildings.description IS 'What the building looks like, who uses it and what visitors can see or do inside.';
ALTER TABLE public.items ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.items.gm_notes IS 'For the game master only: its true history, hidden powers or curse, and how it can drive the story. Never shown to players.';
COMMENT ON COLUMN public.items.description IS 'What the item looks like, the tales told of it and why people want it.';
ALTER TABLE public.quest_hooks ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.quest_hooks.gm_notes IS 'For the game master only: the truth behind the quest, the twist to reveal and how it can end. Never shown to players.';
COMMENT ON COLUMN public.quest_hooks.description IS 'The situation as the players meet it: what is at stake, who asks for help and what they are asked to do.';
ALTER TABLE public.encounters ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.encounters.gm_notes IS 'For the game master only: hidden stakes, tactics, what the foes want and how it can end. Never shown to players.';
COMMENT ON COLUMN public.encounters.description IS 'What the players see happen: who or what is involved and the setup as it appears.';
ALTER TABLE public.deities ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.deities.gm_notes IS 'For the game master only: the deity''s hidden nature, true aims and secret cults. Never shown to players.';
COMMENT ON COLUMN public.deities.description IS 'Who the deity is as the faithful tell it: what they demand of followers, their symbol and how they act in the world.';
ALTER TABLE public.shops ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.shops.gm_notes IS 'For the game master only: the shop''s secret (a fence, a front, a hidden stock) and how to use it. Never shown to players.';
COMMENT ON COLUMN public.shops.description IS 'What it looks like, what it sells, the shopkeeper''s manner and the rumours told there.';
ALTER TABLE public.taverns ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.taverns.gm_notes IS 'For the game master only: what goes on out of sight, who meets there in secret and why. Never shown to players.';
COMMENT ON COLUMN public.taverns.description IS 'Atmosphere, regulars, the innkeeper, and what happens there on a typical night.';
ALTER TABLE public.temples ADD COLUMN gm_notes text NOT NULL DEFAULT '';
COMMENT ON COLUMN public.temples.gm_notes IS 'For the game master only: the temple''s hidden side (relics, schisms, a corrupt priest) and how to use it. Never shown to players.';
COMMENT ON COLUMN public.temples.description IS 'Architecture, clergy, rites and what the temple offers or demands of visitors.';

UPDATE public.entity_factions SET is_secret = false WHERE is_secret IS NULL;
ALTER TABLE public.entity_factions ALTER COLUMN is_secret SET DEFAULT false;
ALTER TABLE public.entity_factions ALTER COLUMN is_secret SET NOT NULL;
COMMENT ON COLUMN public.entity_factions.is_secret IS 'True if the membership is hidden: players learn of it only by uncovering it (a spy, a secret patron). False if it is known.';
ALTER TABLE public.entity_relationships ADD COLUMN is_secret boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN public.entity_relationships.is_secret IS 'True if the relationship is hidden: players learn of it only by uncovering it. False if it is known.';
ALTER TABLE public.entity_locations ADD COLUMN is_secret boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN public.entity_locations.is_secret IS 'True if the NPC''s tie to the place is hidden (a secret lair, a hidden haunt). False if it is known.';
ALTER TABLE public.entity_items ADD COLUMN is_secret boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN public.entity_items.is_secret IS 'True if the NPC''s tie to the item is hidden (secretly holds or seeks it). False if it is known.';
-- is_public (nullable, NULL meaning unknown) becomes is_secret like the other links.
ALTER TABLE public.faction_relationships ADD COLUMN is_secret boolean NOT NULL DEFAULT false;
UPDATE public.faction_relationships SET is_secret = (is_public IS FALSE);
ALTER TABLE public.faction_relationships DROP COLUMN is_public;
COMMENT ON COLUMN public.faction_relationships.is_secret IS 'True if the relationship is hidden (e.g. a secret alliance). False if it is known.';
