-- The running maximum of record_time along the chain: it never decreases with position, so a
-- filter "recorded at or after T" starts at the first position where it reaches T (an index
-- lookup) instead of scanning every earlier entry.
ALTER TABLE audit_log ADD COLUMN record_time_max INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER audit_log_no_update;
UPDATE audit_log SET record_time_max = running.time_max
FROM (SELECT position, MAX(record_time) OVER (ORDER BY position) AS time_max FROM audit_log) AS running
WHERE audit_log.position = running.position;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit trail is append-only: UPDATE on audit_log refused');
END;

CREATE INDEX audit_log_by_time_max ON audit_log (record_time_max, position);
