-- Leads: one row per contact (deduplicated on the normalised email). `document` is the lead as
-- the engine sees it; the other columns are projections of it for filters, orders and sweeps.
CREATE TABLE leads (
    id              UUID PRIMARY KEY,
    email           TEXT NOT NULL,
    state           TEXT NOT NULL,
    source_channel  TEXT NOT NULL,
    fit_grade       TEXT NOT NULL,
    combined_points BIGINT NOT NULL,
    create_time     BIGINT NOT NULL,  -- microseconds since the Unix epoch, like every time here
    update_time     BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    sla_due_time    BIGINT,           -- set while a first touch is due and no breach is recorded
    revisit_time    BIGINT,           -- set while NURTURING
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
-- the sequencer into audit_log, which gives them a gap-free position and a chain hash. Writers
-- therefore never wait on one another for the chain.
CREATE TABLE audit_inbox (
    id              BIGSERIAL PRIMARY KEY,
    lead_id         UUID,
    kind            TEXT NOT NULL,
    record_time     BIGINT NOT NULL,
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
    position        BIGINT PRIMARY KEY,
    inbox_id        BIGINT NOT NULL UNIQUE,
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
    previous_hash   BYTEA NOT NULL,
    hash            BYTEA NOT NULL
);
CREATE INDEX audit_log_by_lead ON audit_log (lead_id, position);
CREATE INDEX audit_log_by_kind ON audit_log (kind, position);
CREATE INDEX audit_log_by_actor ON audit_log (actor, position);
CREATE INDEX audit_log_by_state_after ON audit_log (state_after, position);
CREATE INDEX audit_log_by_policy ON audit_log (policy_version, position);
CREATE INDEX audit_log_by_channel ON audit_log (source_channel, position);
CREATE INDEX audit_log_by_time ON audit_log (record_time, position);

CREATE FUNCTION leadgate_refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'leadgate audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION leadgate_refuse_audit_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION leadgate_refuse_audit_change();

-- An inbox entry is never changed, and leaves the inbox only once it is in the log.
CREATE FUNCTION leadgate_guard_audit_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR NOT EXISTS (SELECT 1 FROM audit_log WHERE inbox_id = OLD.id) THEN
        RAISE EXCEPTION 'leadgate audit inbox: % of an entry not yet in the audit log refused', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER audit_inbox_guard BEFORE UPDATE OR DELETE ON audit_inbox
    FOR EACH ROW EXECUTE FUNCTION leadgate_guard_audit_inbox();
CREATE TRIGGER audit_inbox_no_truncate BEFORE TRUNCATE ON audit_inbox
    FOR EACH STATEMENT EXECUTE FUNCTION leadgate_refuse_audit_change();

-- Idempotency keys: the first response to each (caller, request_id), kept for replays.
CREATE TABLE idempotency_keys (
    principal       TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    method          TEXT NOT NULL,
    fingerprint     BYTEA NOT NULL,
    response        TEXT NOT NULL,
    create_time     BIGINT NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (principal, request_id)
);
CREATE INDEX idempotency_keys_by_create_time ON idempotency_keys (create_time);

-- Every policy version ever activated, and when.
CREATE TABLE policies (
    version         TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    content         TEXT NOT NULL,
    activate_time   BIGINT NOT NULL
);
CREATE TABLE policy_activations (
    id              BIGSERIAL PRIMARY KEY,
    version         TEXT NOT NULL REFERENCES policies (version),
    activate_time   BIGINT NOT NULL
);
