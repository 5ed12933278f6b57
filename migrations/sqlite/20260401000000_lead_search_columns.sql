-- What ListLeads finds a lead by, kept beside its document as columns (projections of it, like
-- state): the company's domain (the email's when none was given, as scoring uses it), its name
-- lower-cased (for case-insensitive `=`, `:` and prefix matches), the campaign and the caller's
-- external reference. Every lead write fills them; existing leads are filled here.
ALTER TABLE leads ADD COLUMN company_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN company_name_folded TEXT NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN source_campaign TEXT NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN external_reference TEXT NOT NULL DEFAULT '';

-- SQLite's lower() folds ASCII letters only: a name written before this migration with other
-- capitals is folded fully when its lead is next written.
UPDATE leads SET
    company_domain = COALESCE(json_extract(document, '$.profile.company.domain'),
                              substr(email, instr(email, '@') + 1)),
    company_name_folded = lower(COALESCE(json_extract(document, '$.profile.company.name'), '')),
    source_campaign = COALESCE(json_extract(document, '$.profile.source.campaign'), ''),
    external_reference = COALESCE(json_extract(document, '$.profile.external_reference'), '')
WHERE json_valid(document);

-- Lookups by domain, name (equal or prefix) and reference are index range scans, in the default
-- order (create_time, id) for the first two. The email is unique-indexed already (leads_email_key).
CREATE INDEX leads_by_company_domain ON leads (company_domain, create_time, id);
CREATE INDEX leads_by_company_name ON leads (company_name_folded, create_time, id);
CREATE INDEX leads_by_external_reference ON leads (external_reference, create_time, id);
