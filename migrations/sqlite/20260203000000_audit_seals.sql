-- Seals: leadgate authenticates each audit entry as it writes it (a keyed MAC over the entry,
-- checked by the sequencer before it chains the entry) and each link of the chain as it makes it
-- (a keyed MAC over the position and the hash, checked by VerifyAuditTrail). Rows that anyone
-- else writes into the inbox carry no seal that holds: they are set aside, never chained.
ALTER TABLE audit_inbox ADD COLUMN seal_key_id TEXT;
ALTER TABLE audit_inbox ADD COLUMN seal BLOB;
ALTER TABLE audit_log ADD COLUMN seal_key_id TEXT;
ALTER TABLE audit_log ADD COLUMN seal BLOB;

-- Entries chained before seals existed carry none: every position from `sealed_from` on must.
CREATE TABLE audit_settings (
    sealed_from     INTEGER NOT NULL
);
INSERT INTO audit_settings (sealed_from) SELECT COALESCE(MAX(position), 0) + 1 FROM audit_log;
CREATE TRIGGER audit_settings_no_insert BEFORE INSERT ON audit_settings
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit settings are fixed: INSERT refused');
END;
CREATE TRIGGER audit_settings_no_update BEFORE UPDATE ON audit_settings
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit settings are fixed: UPDATE refused');
END;
CREATE TRIGGER audit_settings_no_delete BEFORE DELETE ON audit_settings
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit settings are fixed: DELETE refused');
END;

-- Rows of the inbox the sequencer refused (unsealed, a seal that does not hold, unreadable, a
-- copy of a chained entry), kept as they were written, with why. Append-only.
CREATE TABLE audit_quarantine (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    inbox_id        INTEGER NOT NULL,
    quarantine_time INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    detail          TEXT NOT NULL,
    lead_id         BLOB,
    kind            TEXT NOT NULL,
    record_time     INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    request_id      TEXT,
    state_before    TEXT,
    state_after     TEXT,
    source_channel  TEXT,
    policy_version  TEXT NOT NULL,
    body            TEXT NOT NULL,
    seal_key_id     TEXT,
    seal            BLOB
);
CREATE INDEX audit_quarantine_by_inbox_id ON audit_quarantine (inbox_id);
CREATE TRIGGER audit_quarantine_no_update BEFORE UPDATE ON audit_quarantine
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit quarantine is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_quarantine_no_delete BEFORE DELETE ON audit_quarantine
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit quarantine is append-only: DELETE refused');
END;

-- An inbox entry leaves the inbox only once it is in the log or set aside.
DROP TRIGGER audit_inbox_delete_once_chained;
CREATE TRIGGER audit_inbox_delete_once_chained BEFORE DELETE ON audit_inbox
WHEN NOT EXISTS (SELECT 1 FROM audit_log WHERE inbox_id = OLD.id)
    AND NOT EXISTS (SELECT 1 FROM audit_quarantine WHERE inbox_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit inbox: DELETE of an entry neither in the audit log nor in quarantine refused');
END;
