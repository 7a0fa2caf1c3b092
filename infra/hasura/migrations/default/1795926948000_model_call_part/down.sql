ALTER TABLE public.model_calls DROP COLUMN part;
