-- Where readiness checks that a write can commit again after the database refused one (no room,
-- read-only). Each probe inserts a row and deletes it in the same transaction.
CREATE TABLE storage_probe (
    id              UUID PRIMARY KEY,
    filler          BYTEA NOT NULL
);
-- Stored as written: the probe must take the room a real write takes.
ALTER TABLE storage_probe ALTER COLUMN filler SET STORAGE EXTERNAL;
