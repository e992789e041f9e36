-- The outcome of a rule's dataset action, per (rule, run), beside the
-- webhook's and the evaluator's.
ALTER TABLE rule_runs ADD COLUMN add_to_dataset TEXT;
