-- What ListLeads finds a lead by, kept beside its document as columns (projections of it, like
-- state): the company's domain (the email's when none was given, as scoring uses it), its name
-- lower-cased (for case-insensitive `=`, `:` and prefix matches), the campaign and the caller's
-- external reference. Every lead write fills them; existing leads are filled here.
-- The folded name compares in byte order ("C"): a prefix match is a range of the index whatever
-- the database's collation, and the same range as on SQLite.
ALTER TABLE leads
    ADD COLUMN company_domain TEXT NOT NULL DEFAULT '',
    ADD COLUMN company_name_folded TEXT COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN source_campaign TEXT NOT NULL DEFAULT '',
    ADD COLUMN external_reference TEXT NOT NULL DEFAULT '';

-- A document that is not JSON reads as empty (as the service reads it): nothing to fill.
CREATE FUNCTION leadgate_json_or_null(text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN $1::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

UPDATE leads SET
    company_domain = COALESCE(parsed.doc #>> '{profile,company,domain}', split_part(leads.email, '@', 2)),
    company_name_folded = lower(COALESCE(parsed.doc #>> '{profile,company,name}', '')),
    source_campaign = COALESCE(parsed.doc #>> '{profile,source,campaign}', ''),
    external_reference = COALESCE(parsed.doc #>> '{profile,external_reference}', '')
FROM (SELECT id, leadgate_json_or_null(document) AS doc FROM leads) AS parsed
WHERE leads.id = parsed.id AND parsed.doc IS NOT NULL;

DROP FUNCTION leadgate_json_or_null(text);

-- Lookups by domain, name (equal or prefix) and reference are index range scans, in the default
-- order (create_time, id) for the first two. The email is unique-indexed already (leads_email_key).
CREATE INDEX leads_by_company_domain ON leads (company_domain, create_time, id);
CREATE INDEX leads_by_company_name ON leads (company_name_folded, create_time, id);
CREATE INDEX leads_by_external_reference ON leads (external_reference, create_time, id);
