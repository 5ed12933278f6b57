-- The running maximum of record_time along the chain: it never decreases with position, so a
-- filter "recorded at or after T" starts at the first position where it reaches T (an index
-- lookup) instead of scanning every earlier entry.
ALTER TABLE audit_log ADD COLUMN record_time_max BIGINT;

ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE audit_log SET record_time_max = running.time_max
FROM (SELECT position, MAX(record_time) OVER (ORDER BY position) AS time_max FROM audit_log) AS running
WHERE audit_log.position = running.position;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;

ALTER TABLE audit_log ALTER COLUMN record_time_max SET NOT NULL;
CREATE INDEX audit_log_by_time_max ON audit_log (record_time_max, position);
