-- Per-user choices of the web UI, kept on the server (nothing is stored in the browser).

CREATE TABLE user_preferences (
    tenant_id uuid NOT NULL DEFAULT current_tenant(),
    user_id uuid NOT NULL,
    language text NOT NULL DEFAULT 'de' CHECK (language IN ('de', 'en')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);

ALTER TABLE user_preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_preferences FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_preferences
    USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());
REVOKE ALL ON user_preferences FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON user_preferences TO tresor_crm_runtime;
