-- The role every server query runs as (SET ROLE right after connecting). It is not a superuser
-- and has no BYPASSRLS, so the row-level security policies below actually apply to it.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fahwa_app') THEN
    CREATE ROLE fahwa_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
  END IF;
END
$$;

-- The tenant a transaction acts for, set with set_config('fahwa.tenant_id', id, true).
CREATE FUNCTION fahwa_current_tenant() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT NULLIF(current_setting('fahwa.tenant_id', true), '')::uuid
$$;

-- Platform operators read across tenants; set only after the server has checked the claim.
CREATE FUNCTION fahwa_is_operator() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('fahwa.operator', true), '') = 'on'
$$;

CREATE TABLE tenants (
  id uuid PRIMARY KEY,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  timezone text NOT NULL DEFAULT 'UTC',
  currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_created_idx ON tenants (created_at, id);

CREATE TABLE members (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  email text NOT NULL CHECK (email = lower(email)),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  password_hash text NOT NULL,
  role text NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'ANALYST', 'VIEWER')),
  is_operator boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_active_at timestamptz,
  removed_at timestamptz
);
CREATE UNIQUE INDEX members_tenant_email_key ON members (tenant_id, email) WHERE removed_at IS NULL;
CREATE INDEX members_tenant_created_idx ON members (tenant_id, created_at, id) WHERE removed_at IS NULL;

-- One row per refresh token; a log-in starts a family and each refresh adds one to it.
CREATE TABLE refresh_tokens (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  member_id uuid NOT NULL REFERENCES members (id) ON DELETE CASCADE,
  family_id uuid NOT NULL,
  token_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_member_idx ON refresh_tokens (member_id) WHERE revoked_at IS NULL;

CREATE TABLE api_keys (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  key_prefix text NOT NULL,
  key_hash bytea NOT NULL UNIQUE,
  scopes text[] NOT NULL CHECK (scopes <@ ARRAY['INGEST', 'READ'] AND cardinality(scopes) > 0),
  created_by uuid REFERENCES members (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

-- Failed log-ins for an unknown tenant have no tenant: only operators see those.
CREATE TABLE audit_log (
  id uuid PRIMARY KEY,
  tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
  at timestamptz NOT NULL DEFAULT now(),
  actor_id uuid,
  actor_kind text NOT NULL CHECK (actor_kind IN ('MEMBER', 'API_KEY', 'ANONYMOUS', 'SYSTEM')),
  action text NOT NULL,
  target_type text,
  target_id text,
  ip text,
  user_agent text,
  request_id text,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id DESC);

-- Counters kept by ingestion so that the operators' tenant list never counts raw events.
CREATE TABLE tenant_usage (
  tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  events_total bigint NOT NULL DEFAULT 0
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
  USING (id = fahwa_current_tenant() OR fahwa_is_operator())
  WITH CHECK (id = fahwa_current_tenant());

ALTER TABLE members ENABLE ROW LEVEL SECURITY;
ALTER TABLE members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON members
  USING (tenant_id = fahwa_current_tenant() OR fahwa_is_operator())
  WITH CHECK (tenant_id = fahwa_current_tenant());

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
  USING (tenant_id = fahwa_current_tenant())
  WITH CHECK (tenant_id = fahwa_current_tenant());

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
  USING (tenant_id = fahwa_current_tenant())
  WITH CHECK (tenant_id = fahwa_current_tenant());

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
  USING (tenant_id = fahwa_current_tenant() OR fahwa_is_operator())
  WITH CHECK (tenant_id IS NOT DISTINCT FROM fahwa_current_tenant());

ALTER TABLE tenant_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_usage
  USING (tenant_id = fahwa_current_tenant() OR fahwa_is_operator())
  WITH CHECK (tenant_id = fahwa_current_tenant());

-- Look-ups that must happen before the tenant is known. Each answers only the one thing its
-- caller needs, by a secret or a public name, and runs with its owner's rights.
CREATE FUNCTION fahwa_tenant_id_by_slug(p_slug text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id FROM tenants WHERE slug = p_slug
$$;

CREATE FUNCTION fahwa_refresh_token_tenant(p_hash bytea) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT tenant_id FROM refresh_tokens WHERE token_hash = p_hash
$$;

CREATE FUNCTION fahwa_api_key_tenant(p_hash bytea) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT tenant_id FROM api_keys WHERE key_hash = p_hash
$$;

GRANT USAGE ON SCHEMA public TO fahwa_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, members, refresh_tokens, api_keys, audit_log, tenant_usage TO fahwa_app;
GRANT EXECUTE ON FUNCTION fahwa_current_tenant(), fahwa_is_operator(), fahwa_tenant_id_by_slug(text),
  fahwa_refresh_token_tenant(bytea), fahwa_api_key_tenant(bytea) TO fahwa_app;
