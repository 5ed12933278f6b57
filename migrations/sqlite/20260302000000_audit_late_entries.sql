-- Entries chained more than an hour after a later-recorded one (a sequencer held up, a replica's
-- clock behind): record_time_max exceeds their record_time by over an hour. A funnel report
-- reads its period in position order up to the first entry whose record_time_max passes the
-- period's end by an hour, and then these late entries of the period from this index, which is
-- empty in normal service. The hour is `LATE_ENTRY_MICROS` in the service.
CREATE INDEX audit_log_late ON audit_log (record_time, position)
    WHERE record_time_max - record_time > 3600000000;
