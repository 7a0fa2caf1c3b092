-- Parts (issue 12): which call of a phase a ledger row is: its outline, its cache primer, or the
-- part (its tables, and its first key when a table is dealt out between parts). NULL: one call.
ALTER TABLE public.model_calls ADD COLUMN part text;
COMMENT ON COLUMN public.model_calls.part IS 'The call within its phase: "outline", "primer", or the part''s tables (with its first key when a table is split between parts); NULL for a phase in one call.';
