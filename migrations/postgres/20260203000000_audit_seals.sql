-- Seals: leadgate authenticates each audit entry as it writes it (a keyed MAC over the entry,
-- checked by the sequencer before it chains the entry) and each link of the chain as it makes it
-- (a keyed MAC over the position and the hash, checked by VerifyAuditTrail). Rows that anyone
-- else writes into the inbox carry no seal that holds: they are set aside, never chained.
ALTER TABLE audit_inbox ADD COLUMN seal_key_id TEXT, ADD COLUMN seal BYTEA;
ALTER TABLE audit_log ADD COLUMN seal_key_id TEXT, ADD COLUMN seal BYTEA;

-- Entries chained before seals existed carry none: every position from `sealed_from` on must.
CREATE TABLE audit_settings (
    sealed_from     BIGINT NOT NULL
);
INSERT INTO audit_settings (sealed_from) SELECT COALESCE(MAX(position), 0) + 1 FROM audit_log;
CREATE TRIGGER audit_settings_fixed BEFORE INSERT OR UPDATE OR DELETE ON audit_settings
    FOR EACH ROW EXECUTE FUNCTION leadgate_refuse_audit_change();
CREATE TRIGGER audit_settings_no_truncate BEFORE TRUNCATE ON audit_settings
    FOR EACH STATEMENT EXECUTE FUNCTION leadgate_refuse_audit_change();

-- Rows of the inbox the sequencer refused (unsealed, a seal that does not hold, unreadable, a
-- copy of a chained entry), kept as they were written, with why. Append-only.
CREATE TABLE audit_quarantine (
    id              BIGSERIAL PRIMARY KEY,
    inbox_id        BIGINT NOT NULL,
    quarantine_time BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    detail          TEXT NOT NULL,
    lead_id         UUID,
    kind            TEXT NOT NULL,
    record_time     BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    request_id      TEXT,
    state_before    TEXT,
    state_after     TEXT,
    source_channel  TEXT,
    policy_version  TEXT NOT NULL,
    body            TEXT NOT NULL,
    seal_key_id     TEXT,
    seal            BYTEA
);
CREATE INDEX audit_quarantine_by_inbox_id ON audit_quarantine (inbox_id);
CREATE TRIGGER audit_quarantine_append_only BEFORE UPDATE OR DELETE ON audit_quarantine
    FOR EACH ROW EXECUTE FUNCTION leadgate_refuse_audit_change();
CREATE TRIGGER audit_quarantine_no_truncate BEFORE TRUNCATE ON audit_quarantine
    FOR EACH STATEMENT EXECUTE FUNCTION leadgate_refuse_audit_change();

-- An inbox entry is never changed, and leaves the inbox only once it is in the log or set aside.
CREATE OR REPLACE FUNCTION leadgate_guard_audit_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        OR NOT (EXISTS (SELECT 1 FROM audit_log WHERE inbox_id = OLD.id)
                OR EXISTS (SELECT 1 FROM audit_quarantine WHERE inbox_id = OLD.id)) THEN
        RAISE EXCEPTION 'leadgate audit inbox: % of an entry neither in the audit log nor in quarantine refused', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END
$$;
