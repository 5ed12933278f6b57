-- Where readiness checks that a write can commit again after the database refused one (no room,
-- read-only). Each probe commits a row, then deletes it.
CREATE TABLE storage_probe (
    id              BLOB PRIMARY KEY,
    filler          BLOB NOT NULL
);
