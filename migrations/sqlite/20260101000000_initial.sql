-- Leads: one row per contact (deduplicated on the normalised email). `document` is the lead as
-- the engine sees it; the other columns are projections of it for filters, orders and sweeps.
CREATE TABLE leads (
    id              BLOB PRIMARY KEY,
    email           TEXT NOT NULL,
    state           TEXT NOT NULL,
    source_channel  TEXT NOT NULL,
    fit_grade       TEXT NOT NULL,
    combined_points INTEGER NOT NULL,
    create_time     INTEGER NOT NULL,  -- microseconds since the Unix epoch, like every time here
    update_time     INTEGER NOT NULL,
    revision        INTEGER NOT NULL,
    sla_due_time    INTEGER,           -- set while a first touch is due and no breach is recorded
    revisit_time    INTEGER,           -- set while NURTURING
    document        TEXT NOT NULL,
    CONSTRAINT leads_email_key UNIQUE (email)
);
CREATE INDEX leads_by_create_time ON leads (create_time, id);
CREATE INDEX leads_by_update_time ON leads (update_time, id);
CREATE INDEX leads_by_combined_points ON leads (combined_points, id);
CREATE INDEX leads_by_state ON leads (state, create_time, id);
CREATE INDEX leads_by_channel ON leads (source_channel, create_time, id);
CREATE INDEX leads_sla_due ON leads (sla_due_time) WHERE sla_due_time IS NOT NULL;
CREATE INDEX leads_revisit_due ON leads (revisit_time) WHERE revisit_time IS NOT NULL;

-- Audit entries are written here in the transaction of the change they record, then moved by
-- the sequencer into audit_log, which gives them a gap-free position and a chain hash.
-- AUTOINCREMENT: an id is never reused after its row leaves the inbox.
CREATE TABLE audit_inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id         BLOB,
    kind            TEXT NOT NULL,
    record_time     INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    request_id      TEXT,
    state_before    TEXT,
    state_after     TEXT,
    source_channel  TEXT,
    policy_version  TEXT NOT NULL,
    body            TEXT NOT NULL
);

-- The audit trail: append-only, hash-chained, in position order.
CREATE TABLE audit_log (
    position        INTEGER PRIMARY KEY,
    inbox_id        INTEGER NOT NULL UNIQUE,
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
    previous_hash   BLOB NOT NULL,
    hash            BLOB NOT NULL
);
CREATE INDEX audit_log_by_lead ON audit_log (lead_id, position);
CREATE INDEX audit_log_by_kind ON audit_log (kind, position);
CREATE INDEX audit_log_by_actor ON audit_log (actor, position);
CREATE INDEX audit_log_by_state_after ON audit_log (state_after, position);
CREATE INDEX audit_log_by_policy ON audit_log (policy_version, position);
CREATE INDEX audit_log_by_channel ON audit_log (source_channel, position);
CREATE INDEX audit_log_by_time ON audit_log (record_time, position);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit trail is append-only: UPDATE on audit_log refused');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit trail is append-only: DELETE on audit_log refused');
END;

-- An inbox entry is never changed, and leaves the inbox only once it is in the log.
CREATE TRIGGER audit_inbox_no_update BEFORE UPDATE ON audit_inbox
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit inbox: UPDATE refused');
END;
CREATE TRIGGER audit_inbox_delete_once_chained BEFORE DELETE ON audit_inbox
WHEN NOT EXISTS (SELECT 1 FROM audit_log WHERE inbox_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'leadgate audit inbox: DELETE of an entry not yet in the audit log refused');
END;

-- Idempotency keys: the first response to each (caller, request_id), kept for replays.
CREATE TABLE idempotency_keys (
    principal       TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    method          TEXT NOT NULL,
    fingerprint     BLOB NOT NULL,
    response        TEXT NOT NULL,
    create_time     INTEGER NOT NULL,
    PRIMARY KEY (principal, request_id)
);
CREATE INDEX idempotency_keys_by_create_time ON idempotency_keys (create_time);

-- Every policy version ever activated, and when.
CREATE TABLE policies (
    version         TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    content         TEXT NOT NULL,
    activate_time   INTEGER NOT NULL
);
CREATE TABLE policy_activations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    version         TEXT NOT NULL REFERENCES policies (version),
    activate_time   INTEGER NOT NULL
);
