-- What funnel reports read of each entry's body, kept beside it as columns: the SLA clock the
-- entry carries (number, start and first touch in microseconds, breached 0/1) and the
-- disqualification reason. A report over a quarter then reads narrow rows instead of parsing
-- every body. Derived from the entry, like record_time_max, and not hashed: the body stays the
-- record. The sequencer fills them for new entries; existing entries are filled here.
ALTER TABLE audit_log ADD COLUMN sla_number INTEGER;
ALTER TABLE audit_log ADD COLUMN sla_start_time INTEGER;
ALTER TABLE audit_log ADD COLUMN sla_first_touch_time INTEGER;
ALTER TABLE audit_log ADD COLUMN sla_breached INTEGER;
ALTER TABLE audit_log ADD COLUMN disqualification TEXT;

-- Times are stored in bodies as RFC 3339 in UTC ("2026-03-02T09:00:00.123456Z"): whole seconds,
-- then up to six digits of fraction (leadgate keeps microseconds).
DROP TRIGGER audit_log_no_update;
UPDATE audit_log SET
    sla_number = CASE WHEN json_type(body, '$.sla') = 'object'
        THEN COALESCE(json_extract(body, '$.sla.number'), 0) END,
    sla_start_time = (SELECT CAST(strftime('%s', substr(t, 1, 19)) AS INTEGER) * 1000000
        + CASE WHEN substr(t, 20, 1) = '.'
            THEN CAST(substr(substr(t, 21, instr(t, 'Z') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END
        FROM (SELECT json_extract(body, '$.sla.started_at') AS t) WHERE t IS NOT NULL),
    sla_first_touch_time = (SELECT CAST(strftime('%s', substr(t, 1, 19)) AS INTEGER) * 1000000
        + CASE WHEN substr(t, 20, 1) = '.'
            THEN CAST(substr(substr(t, 21, instr(t, 'Z') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END
        FROM (SELECT json_extract(body, '$.sla.first_touch_at') AS t) WHERE t IS NOT NULL),
    sla_breached = CASE WHEN json_type(body, '$.sla') = 'object'
        THEN json_type(body, '$.sla.breached_at') IS NOT NULL AND json_type(body, '$.sla.breached_at') != 'null' END,
    disqualification = json_extract(body, '$.disqualification')
WHERE json_valid(body) AND (json_type(body, '$.sla') IS NOT NULL OR json_type(body, '$.disqualification') IS NOT NULL);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit trail is append-only: UPDATE on audit_log refused');
END;

-- A report reads its period's entries from this index alone (a covering index): in the order of
-- record_time_max then position, which is position order (record_time_max never decreases along
-- the chain), from the first entry whose record_time_max reaches the period's start, with every
-- column it reads, so the wide rows (bodies, hashes, seals) stay unread.
CREATE INDEX audit_log_funnel ON audit_log (record_time_max, position, record_time, lead_id, kind,
    state_before, state_after, source_channel, sla_number, sla_start_time, sla_first_touch_time,
    sla_breached, disqualification);
