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

-- Trigram indexes make the search box fast on millions of contacts. A server without the
-- contrib extensions (the embedded one of local runs) still works, scanning instead.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN undefined_file OR feature_not_supported OR insufficient_privilege THEN
    RAISE NOTICE 'pg_trgm is not available: search works without its index';
END
$$;

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

-- The search index. Row-level security lets PostgreSQL use an index only for leakproof
-- conditions, and LIKE is not one: a search on a table under RLS reads every row of the
-- tenant. So the searchable text of contacts and companies is kept here, in a table
-- without RLS that the service's role cannot read; only search_ids() reads it, and only
-- the rows of the tenant set on the connection.
CREATE TABLE search_entries (
    kind text NOT NULL CHECK (kind IN ('contact', 'company')),
    record_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    company_id uuid,
    deleted boolean NOT NULL DEFAULT false,
    -- The lists' name order: lower(last_name || ' ' || first_name), or lower(name).
    sort_key text NOT NULL,
    text text NOT NULL,
    PRIMARY KEY (kind, record_id)
);
CREATE INDEX search_entries_company ON search_entries (tenant_id, company_id);
CREATE INDEX search_entries_order ON search_entries (tenant_id, kind, deleted, sort_key, record_id);
REVOKE ALL ON search_entries FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX search_entries_text ON search_entries USING gin (text gin_trgm_ops);
    END IF;
END
$$;

CREATE FUNCTION search_entries_follow() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    fields jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM search_entries WHERE kind = TG_ARGV[0] AND record_id = OLD.id;
        RETURN OLD;
    END IF;
    fields := to_jsonb(NEW);
    INSERT INTO search_entries (kind, record_id, tenant_id, company_id, deleted, sort_key, text)
    VALUES (
        TG_ARGV[0],
        NEW.id,
        NEW.tenant_id,
        (fields ->> 'company_id')::uuid,
        NEW.deleted_at IS NOT NULL,
        CASE TG_ARGV[0]
            WHEN 'contact' THEN lower((fields ->> 'last_name') || ' ' || (fields ->> 'first_name'))
            ELSE lower(fields ->> 'name')
        END,
        NEW.search_text || ' ' || lower(NEW.custom::text)
    )
    ON CONFLICT (kind, record_id) DO UPDATE
        SET company_id = EXCLUDED.company_id, deleted = EXCLUDED.deleted,
            sort_key = EXCLUDED.sort_key, text = EXCLUDED.text;
    RETURN NEW;
END
$$;
CREATE TRIGGER companies_search AFTER INSERT OR UPDATE OR DELETE ON companies
    FOR EACH ROW EXECUTE FUNCTION search_entries_follow('company');
CREATE TRIGGER contacts_search AFTER INSERT OR UPDATE OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION search_entries_follow('contact');

-- Ids of the current tenant's records whose text contains `pattern` (a LIKE pattern);
-- contacts also match through their company. Nothing without a tenant on the connection.
CREATE FUNCTION search_ids(kind text, pattern text) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT e.record_id FROM search_entries e
    WHERE e.tenant_id = current_tenant() AND e.kind = search_ids.kind AND e.text LIKE pattern
    UNION
    SELECT e.record_id FROM search_entries e
    WHERE search_ids.kind = 'contact' AND e.tenant_id = current_tenant() AND e.kind = 'contact'
      AND e.company_id IN (
          SELECT c.record_id FROM search_entries c
          WHERE c.tenant_id = current_tenant() AND c.kind = 'company' AND c.text LIKE pattern)
$$;
REVOKE ALL ON FUNCTION search_ids(text, text) FROM PUBLIC;

-- One page of search results in name order, after the keyset (after_key, after_id).
-- Planned for each call with the actual pattern (EXECUTE), so PostgreSQL can choose
-- between the trigram index (rare words) and walking the name order (common words).
CREATE FUNCTION search_page(
    kind text, pattern text, deleted boolean, descending boolean,
    after_key text, after_id uuid, page_size integer
) RETURNS TABLE (record_id uuid, sort_key text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    direction text := CASE WHEN descending THEN 'DESC' ELSE 'ASC' END;
    after text := CASE
        WHEN after_key IS NULL THEN ''
        WHEN descending THEN ' AND (e.sort_key, e.record_id) < ($5, $6)'
        ELSE ' AND (e.sort_key, e.record_id) > ($5, $6)'
    END;
    tenant uuid := current_tenant();
BEGIN
    IF tenant IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT r.record_id, r.sort_key FROM ('
        '  (SELECT e.record_id, e.sort_key FROM search_entries e'
        '   WHERE e.tenant_id = $1 AND e.kind = $2 AND e.deleted = $4 AND e.text LIKE $3 %1$s'
        '   ORDER BY e.sort_key %2$s, e.record_id %2$s LIMIT $7)'
        '  UNION'
        '  (SELECT e.record_id, e.sort_key FROM search_entries e'
        '   JOIN search_entries c ON c.kind = ''company'' AND c.record_id = e.company_id'
        '   WHERE $2 = ''contact'' AND e.tenant_id = $1 AND e.kind = ''contact'''
        '     AND e.deleted = $4 AND c.tenant_id = $1 AND c.text LIKE $3 %1$s'
        '   ORDER BY e.sort_key %2$s, e.record_id %2$s LIMIT $7)'
        ') r ORDER BY r.sort_key %2$s, r.record_id %2$s LIMIT $7',
        after, direction)
    USING tenant, kind, pattern, deleted, after_key, after_id, page_size;
END
$$;
REVOKE ALL ON FUNCTION search_page(text, text, boolean, boolean, text, uuid, integer) FROM PUBLIC;

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
GRANT EXECUTE ON FUNCTION current_tenant(), words(text[]), search_ids(text, text),
    search_page(text, text, boolean, boolean, text, uuid, integer) TO tresor_crm_runtime;
