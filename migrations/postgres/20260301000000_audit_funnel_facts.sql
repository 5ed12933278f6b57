-- What funnel reports read of each entry's body, kept beside it as columns: the SLA clock the
-- entry carries (number, start and first touch in microseconds, breached 0/1) and the
-- disqualification reason. A report over a quarter then reads narrow rows instead of parsing
-- every body. Derived from the entry, like record_time_max, and not hashed: the body stays the
-- record. The sequencer fills them for new entries; existing entries are filled here.
ALTER TABLE audit_log
    ADD COLUMN sla_number BIGINT,
    ADD COLUMN sla_start_time BIGINT,
    ADD COLUMN sla_first_touch_time BIGINT,
    ADD COLUMN sla_breached BIGINT,
    ADD COLUMN disqualification TEXT;

-- A body that is not JSON reads as empty (as the service reads it): no facts.
CREATE FUNCTION leadgate_json_or_null(text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN $1::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION leadgate_micros(text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT (EXTRACT(EPOCH FROM $1::timestamptz) * 1000000)::bigint
$$;

ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE audit_log SET
    sla_number = CASE WHEN facts.sla IS NOT NULL THEN COALESCE((facts.sla->>'number')::bigint, 0) END,
    sla_start_time = leadgate_micros(facts.sla->>'started_at'),
    sla_first_touch_time = leadgate_micros(facts.sla->>'first_touch_at'),
    sla_breached = CASE WHEN facts.sla IS NOT NULL THEN (facts.sla->>'breached_at' IS NOT NULL)::int END,
    disqualification = facts.disqualification
FROM (
    SELECT position,
           CASE WHEN jsonb_typeof(body->'sla') = 'object' THEN body->'sla' END AS sla,
           body->>'disqualification' AS disqualification
    FROM (SELECT position, leadgate_json_or_null(body) AS body FROM audit_log) AS parsed
    WHERE body ? 'sla' OR body ? 'disqualification'
) AS facts
WHERE audit_log.position = facts.position;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;

DROP FUNCTION leadgate_micros(text);
DROP FUNCTION leadgate_json_or_null(text);

-- A report reads its period's entries from this index alone (an index-only scan): in the order
-- of record_time_max then position, which is position order (record_time_max never decreases
-- along the chain), from the first entry whose record_time_max reaches the period's start, with
-- every column it reads, so the wide rows (bodies, hashes, seals) stay unread.
CREATE INDEX audit_log_funnel ON audit_log (record_time_max, position)
    INCLUDE (record_time, lead_id, kind, state_before, state_after, source_channel, sla_number,
             sla_start_time, sla_first_touch_time, sla_breached, disqualification);
