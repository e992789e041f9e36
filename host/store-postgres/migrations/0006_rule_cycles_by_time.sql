-- A rule's cycles and deliveries over a time span (the dashboard's rules
-- list) are read by time: cycles by when their window ended.
CREATE INDEX rule_cycles_by_time ON rule_cycles (window_end);
