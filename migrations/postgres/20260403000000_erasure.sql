-- Erasure (EraseLead, retention): when a lead's personal data was erased (NULL: never). Set by
-- the erasure's write only; other writes leave it as it is.
ALTER TABLE leads ADD COLUMN erase_time BIGINT;

-- The retention sweep walks the leads not erased yet, least recently changed first.
CREATE INDEX leads_retention ON leads (update_time, id) WHERE erase_time IS NULL;

-- The suppression list: a keyed hash (HMAC-SHA-256 under an audit key) of each erased email, so
-- that a later submission or import of it does not bring the person back unnoticed. No email is
-- kept here, and without the key the hashes cannot be tested against a list of addresses.
CREATE TABLE suppressed_emails (
    email_hash      BYTEA PRIMARY KEY,
    suppress_time   BIGINT NOT NULL
);
