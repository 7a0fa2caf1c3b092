ALTER TABLE public.generations DROP COLUMN redrive_count;
