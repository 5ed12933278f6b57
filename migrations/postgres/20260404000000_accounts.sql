-- Accounts: the companies leads belong to, kept by the account projection from the chained audit
-- trail (`app::accounts`). Each contact's contribution is kept beside its account, and a change
-- of one contact moves its account's sums by that contact's difference: nothing rescans an
-- account's contacts.
CREATE TABLE accounts (
    account_key        TEXT PRIMARY KEY,          -- `domain:acme.fr` or `ref:<CRM account id>`
    state              TEXT NOT NULL,
    contacts           BIGINT NOT NULL,
    engagement         BIGINT NOT NULL,           -- hundredths of a point, capped per contact
    qualified_contacts BIGINT NOT NULL,
    customer_contacts  BIGINT NOT NULL,
    create_time        BIGINT NOT NULL,
    update_time        BIGINT NOT NULL
);
CREATE INDEX accounts_by_engagement ON accounts (engagement, account_key);

CREATE TABLE account_contacts (
    lead_id        UUID PRIMARY KEY,
    account_key    TEXT NOT NULL,
    engagement     BIGINT NOT NULL,
    committee_role TEXT,                          -- NULL: none known
    involved_time  BIGINT,                        -- when it last engaged or was on a call
    left_account   BIGINT NOT NULL,               -- 1: left the company; counts no more
    qualified      BIGINT NOT NULL,
    customer       BIGINT NOT NULL
);
-- Who is involved in which role at an account: the committee's question, one index range.
CREATE INDEX account_contacts_by_role ON account_contacts (account_key, committee_role, involved_time);

-- How far into the chain the projection has read: advanced with the changes it made, in their
-- transaction, only from the position it started at (one projector at a time, exactly once).
CREATE TABLE account_projection (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL
);
INSERT INTO account_projection (id, position) VALUES (1, 0);
