-- The highest Step Functions redrive count seen of the generation's execution ($$.Execution.RedriveCount):
-- a redriven phase may move a failed generation back to running only with a count above it, and the
-- failure recorder ignores a late event of an earlier run of the same execution (a lower count).
ALTER TABLE public.generations ADD COLUMN redrive_count integer NOT NULL DEFAULT 0
  CONSTRAINT generations_redrive_count_check CHECK (redrive_count >= 0);
COMMENT ON COLUMN public.generations.redrive_count IS
  'How many times the generation''s execution was redriven (the highest redrive count its phases reported)';
