-- Tenants, users and the append-only, hash-chained audit log.

-- The runtime role: the service connects as a login role that is a member of
-- this one. It may read and insert audit events, never change or remove them.
-- Checked first: CREATE ROLE needs CREATEROLE even when the role exists, and an
-- operator may well have created it already (e.g. CloudNativePG managed roles).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tresor_auth_runtime') THEN
        CREATE ROLE tresor_auth_runtime NOLOGIN;
    END IF;
END
$$;

CREATE TABLE tenants (
    id uuid PRIMARY KEY,
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    -- Per-tenant session policy, within the platform's limits.
    idle_timeout_seconds integer NOT NULL CHECK (idle_timeout_seconds > 0),
    absolute_lifetime_seconds integer NOT NULL CHECK (absolute_lifetime_seconds > 0),
    ip_binding text NOT NULL DEFAULT 'strict' CHECK (ip_binding IN ('strict', 'network', 'log')),
    max_sessions_per_user integer NOT NULL CHECK (max_sessions_per_user > 0),
    require_totp boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    username text NOT NULL CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{0,127}$'),
    display_name text NOT NULL DEFAULT '',
    roles text[] NOT NULL CHECK (roles <@ ARRAY['admin', 'user']::text[] AND cardinality(roles) > 0),
    active boolean NOT NULL DEFAULT true,
    -- Empty: any address.
    allowlist cidr[] NOT NULL DEFAULT '{}',
    password_hash text NOT NULL,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, username)
);

-- One hash chain per tenant; the platform's own events use the nil UUID.
CREATE TABLE audit_chain_heads (
    chain_id uuid PRIMARY KEY,
    last_seq bigint NOT NULL,
    last_hash bytea NOT NULL
);

CREATE TABLE audit_events (
    chain_id uuid NOT NULL,
    seq bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    event text NOT NULL,
    actor_user_id uuid,
    subject_user_id uuid,
    client_ip inet,
    details jsonb NOT NULL DEFAULT '{}',
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX audit_events_by_time ON audit_events (chain_id, occurred_at DESC);
CREATE INDEX audit_events_by_event ON audit_events (chain_id, event, seq DESC);

-- Append-only for everyone, the owner included: the trigger refuses changes.
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

REVOKE ALL ON tenants, users, audit_chain_heads, audit_events FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON tenants, users TO tresor_auth_runtime;
GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO tresor_auth_runtime;
GRANT SELECT, INSERT ON audit_events TO tresor_auth_runtime;
GRANT SELECT ON schema_migrations TO tresor_auth_runtime;
