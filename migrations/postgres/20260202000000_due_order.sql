-- The sweeper reads due leads in order of due time then id: the partial indexes give that order.
DROP INDEX leads_sla_due;
DROP INDEX leads_revisit_due;
CREATE INDEX leads_sla_due ON leads (sla_due_time, id) WHERE sla_due_time IS NOT NULL;
CREATE INDEX leads_revisit_due ON leads (revisit_time, id) WHERE revisit_time IS NOT NULL;
