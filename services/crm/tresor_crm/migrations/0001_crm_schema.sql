-- The CRM's data, one tenant per row, kept apart by row-level security.
--
-- Every tenant-owned table has tenant_id and a policy that limits every
-- statement to the tenant set on the connection (SET LOCAL tresor.tenant_id),
-- FORCEd so that it binds the table owner too. Without the setting nothing is
-- visible and nothing can be written.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tresor_crm_runtime') THEN
        CREATE ROLE tresor_crm_runtime NOLOGIN NOBYPASSRLS;
    END IF;
END
$$;

-- Trigram indexes make the search box fast on millions of contacts.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE FUNCTION current_tenant() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('tresor.tenant_id', true), '')::uuid
$$;

-- array_to_string is only STABLE; for text arrays it is immutable in fact, and generated
-- search columns need that promise.
CREATE FUNCTION words(text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_to_string($1, ' ')
$$;

CREATE TABLE companies (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
    website text NOT NULL DEFAULT '',
    industry text NOT NULL DEFAULT '',
    street text NOT NULL DEFAULT '',
    postal_code text NOT NULL DEFAULT '',
    city text NOT NULL DEFAULT '',
    country text NOT NULL DEFAULT '',
    phone text NOT NULL DEFAULT '',
    tags text[] NOT NULL DEFAULT '{}',
    custom jsonb NOT NULL DEFAULT '{}',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid,
    deleted_at timestamptz,
    search_text text GENERATED ALWAYS AS (
        lower(name || ' ' || website || ' ' || industry || ' ' || city || ' ' || phone || ' '
              || words(tags))
    ) STORED,
    UNIQUE (tenant_id, id)
);
CREATE INDEX companies_tenant_name ON companies (tenant_id, lower(name));
CREATE INDEX companies_search ON companies USING gin (search_text gin_trgm_ops);
CREATE INDEX companies_custom ON companies USING gin (custom jsonb_path_ops);

CREATE TABLE contacts (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    first_name text NOT NULL DEFAULT '',
    last_name text NOT NULL CHECK (length(last_name) BETWEEN 1 AND 200),
    company_id uuid,
    emails text[] NOT NULL DEFAULT '{}',
    phones text[] NOT NULL DEFAULT '{}',
    position text NOT NULL DEFAULT '',
    street text NOT NULL DEFAULT '',
    postal_code text NOT NULL DEFAULT '',
    city text NOT NULL DEFAULT '',
    country text NOT NULL DEFAULT '',
    tags text[] NOT NULL DEFAULT '{}',
    owner_id uuid,
    consent boolean NOT NULL DEFAULT false,
    consent_at timestamptz,
    custom jsonb NOT NULL DEFAULT '{}',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid,
    deleted_at timestamptz,
    search_text text GENERATED ALWAYS AS (
        lower(first_name || ' ' || last_name || ' ' || words(emails) || ' '
              || words(phones) || ' ' || position || ' ' || city || ' '
              || words(tags))
    ) STORED,
    UNIQUE (tenant_id, id),
    -- A contact's company belongs to the same tenant, whatever a query says.
    FOREIGN KEY (tenant_id, company_id) REFERENCES companies (tenant_id, id)
);
CREATE INDEX contacts_tenant_name ON contacts (tenant_id, lower(last_name), lower(first_name));
CREATE INDEX contacts_company ON contacts (tenant_id, company_id);
CREATE INDEX contacts_search ON contacts USING gin (search_text gin_trgm_ops);
CREATE INDEX contacts_custom ON contacts USING gin (custom jsonb_path_ops);

-- A tenant's deal pipeline: its own stage names, in its own order.
CREATE TABLE pipeline_stages (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    position integer NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, position) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE deals (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    company_id uuid,
    value_cents bigint NOT NULL DEFAULT 0 CHECK (value_cents >= 0),
    stage_id uuid NOT NULL,
    expected_close date,
    owner_id uuid,
    outcome text NOT NULL DEFAULT 'open' CHECK (outcome IN ('open', 'won', 'lost')),
    outcome_reason text NOT NULL DEFAULT '',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid,
    deleted_at timestamptz,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, company_id) REFERENCES companies (tenant_id, id),
    FOREIGN KEY (tenant_id, stage_id) REFERENCES pipeline_stages (tenant_id, id)
);
CREATE INDEX deals_stage ON deals (tenant_id, stage_id);

CREATE TABLE deal_contacts (
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    deal_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, deal_id, contact_id),
    FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);

-- Notes and activities: a call, a meeting, an e-mail or a note on one record.
CREATE TABLE activities (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    kind text NOT NULL CHECK (kind IN ('call', 'meeting', 'email', 'note')),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    body text NOT NULL CHECK (length(body) <= 100000),
    author_id uuid,
    author_name text NOT NULL DEFAULT '',
    contact_id uuid,
    company_id uuid,
    deal_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK (num_nonnulls(contact_id, company_id, deal_id) = 1),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, company_id) REFERENCES companies (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX activities_contact ON activities (tenant_id, contact_id, occurred_at DESC);
CREATE INDEX activities_company ON activities (tenant_id, company_id, occurred_at DESC);
CREATE INDEX activities_deal ON activities (tenant_id, deal_id, occurred_at DESC);
CREATE INDEX activities_recent ON activities (tenant_id, occurred_at DESC);

CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    due_date date,
    assignee_id uuid,
    done boolean NOT NULL DEFAULT false,
    done_at timestamptz,
    contact_id uuid,
    company_id uuid,
    deal_id uuid,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    UNIQUE (tenant_id, id),
    CHECK (num_nonnulls(contact_id, company_id, deal_id) <= 1),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, company_id) REFERENCES companies (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX tasks_assignee ON tasks (tenant_id, assignee_id, done, due_date);

-- Documents live in the database, in chunks, so one snapshot holds everything.
CREATE TABLE documents (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    filename text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type text NOT NULL,
    size_bytes bigint NOT NULL DEFAULT 0,
    sha256 text NOT NULL DEFAULT '',
    complete boolean NOT NULL DEFAULT false,
    contact_id uuid,
    company_id uuid,
    deal_id uuid,
    uploaded_by uuid,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK (num_nonnulls(contact_id, company_id, deal_id) = 1),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, company_id) REFERENCES companies (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE document_chunks (
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    document_id uuid NOT NULL,
    seq integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant_id, document_id, seq),
    FOREIGN KEY (tenant_id, document_id) REFERENCES documents (tenant_id, id) ON DELETE CASCADE
);
-- Chunks are already compressed or incompressible often enough: store them as they are.
ALTER TABLE document_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Who changed which field from what to what, on every record.
CREATE TABLE record_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    record_type text NOT NULL,
    record_id uuid NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by uuid,
    changed_by_name text NOT NULL DEFAULT '',
    field text NOT NULL,
    old_value jsonb,
    new_value jsonb
);
CREATE INDEX record_history_record ON record_history (tenant_id, record_type, record_id, id DESC);

-- Per-tenant custom fields on contacts and companies.
CREATE TABLE custom_fields (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    entity text NOT NULL CHECK (entity IN ('contact', 'company')),
    key text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
    label text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    kind text NOT NULL CHECK (kind IN ('text', 'number', 'date', 'choice')),
    choices text[] NOT NULL DEFAULT '{}',
    position integer NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, entity, key)
);

-- GDPR Art. 17: what was erased, when and by whom, never who it was. Kept so that
-- an erasure is applied again after a backup is restored.
CREATE TABLE erasures (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    record_type text NOT NULL CHECK (record_type IN ('contact')),
    record_id uuid NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    erased_by uuid,
    reason text NOT NULL DEFAULT '' CHECK (length(reason) <= 500)
);
CREATE INDEX erasures_time ON erasures (erased_at);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['companies', 'contacts', 'pipeline_stages', 'deals', 'deal_contacts',
                             'activities', 'tasks', 'documents', 'document_chunks',
                             'record_history', 'custom_fields', 'erasures']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant()) '
            'WITH CHECK (tenant_id = current_tenant())', t);
        EXECUTE format('REVOKE ALL ON %I FROM PUBLIC', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO tresor_crm_runtime', t);
    END LOOP;
END
$$;

-- History is only added to (and removed with an erased person); erasure records stay.
REVOKE UPDATE ON record_history, erasures FROM tresor_crm_runtime;
REVOKE DELETE ON erasures FROM tresor_crm_runtime;
GRANT SELECT ON schema_migrations TO tresor_crm_runtime;
GRANT EXECUTE ON FUNCTION current_tenant(), words(text[]) TO tresor_crm_runtime;
