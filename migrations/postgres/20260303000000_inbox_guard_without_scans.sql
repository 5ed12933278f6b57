-- The inbox guard's probes of audit_log and audit_quarantine are planned once per session (a
-- PL/pgSQL plan is kept until the tables' statistics change), usually by the sequencer's first
-- run on a young database, when the log holds a few rows: the plan then scans the whole log for
-- every removed row, and a sequencer run of a thousand entries took up to a second once the log
-- had grown (seen with auto_explain under the SubmitLead benchmark). Without sequential scans in
-- the function, its plans probe the indexes whatever the tables' size when they were made.
ALTER FUNCTION leadgate_guard_audit_inbox() SET enable_seqscan = off;
