-- Merged duplicates (MergeLeads): a lead merged into another keeps its row and history, and
-- `merged_into` names the lead its merges end at (re-pointed when that lead is merged in turn),
-- so that one read finds where an alias leads. NULL for every lead not merged: those are the
-- leads ListLeads lists. Adding a nullable column without a default rewrites no row.
ALTER TABLE leads ADD COLUMN merged_into UUID;

-- Re-pointing the aliases of a lead merged in turn finds them by this index.
CREATE INDEX leads_by_merged_into ON leads (merged_into) WHERE merged_into IS NOT NULL;
