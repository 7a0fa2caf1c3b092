DELETE FROM public.model_calls WHERE reroll_id IS NOT NULL;
DROP INDEX public.model_calls_reroll_id_idx;
ALTER TABLE public.model_calls DROP CONSTRAINT model_calls_generation_or_reroll;
ALTER TABLE public.model_calls DROP COLUMN reroll_id;
ALTER TABLE public.model_calls ALTER COLUMN generation_id SET NOT NULL;
COMMENT ON COLUMN public.model_calls.generation_id IS 'The generation that made the call.';
DROP TABLE public.row_rerolls;
