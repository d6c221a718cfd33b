-- The baseline: every table, index, policy and publication of the schema, and the helpers the
-- policies and indexes need. Functions and triggers live in the replaceable layer
-- (src/db/functions, one file each), applied after the migrations.

-- The role every server query runs as (SET ROLE right after connecting). It is not a superuser
-- and has no BYPASSRLS, so the row-level security policies below actually apply to it.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fahwa_app') THEN
    CREATE ROLE fahwa_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
  END IF;
END
$$;

-- The helpers that row-level security policies (the tenant in scope, the operator flag)
-- and the segment indexes depend on. Every other function and trigger is in the replaceable
-- layer (src/db/functions), applied after migrations.
CREATE FUNCTION fahwa_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$
  SELECT NULLIF(current_setting('fahwa.tenant_id', true), '')::uuid
$$;

CREATE FUNCTION fahwa_dims_key(p_dims text[]) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT md5(p_dims::text)::uuid $$;

CREATE FUNCTION fahwa_is_operator() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  SELECT coalesce(current_setting('fahwa.operator', true), '') = 'on'
$$;

-- Tables. Event and rollup tables carry no foreign key to tenants: each checked row locked
-- the tenant row, thousands of times per batch; deleting a tenant deletes its event data
-- explicitly. Events are partitioned by month of occurrence; partitions are made on demand.
CREATE TABLE active_transitions (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    prev_day date NOT NULL,
    users integer NOT NULL
);

ALTER TABLE ONLY active_transitions FORCE ROW LEVEL SECURITY;

CREATE TABLE api_keys (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    key_prefix text NOT NULL,
    key_hash bytea NOT NULL,
    scopes text[] NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT api_keys_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT api_keys_scopes_check CHECK (((scopes <@ ARRAY['INGEST'::text, 'READ'::text]) AND (cardinality(scopes) > 0)))
);

ALTER TABLE ONLY api_keys FORCE ROW LEVEL SECURITY;

CREATE TABLE audit_log (
    id uuid NOT NULL,
    tenant_id uuid,
    at timestamp with time zone DEFAULT now() NOT NULL,
    actor_id uuid,
    actor_kind text NOT NULL,
    action text NOT NULL,
    target_type text,
    target_id text,
    ip text,
    user_agent text,
    request_id text,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT audit_log_actor_kind_check CHECK ((actor_kind = ANY (ARRAY['MEMBER'::text, 'API_KEY'::text, 'ANONYMOUS'::text, 'SYSTEM'::text])))
);

ALTER TABLE ONLY audit_log FORCE ROW LEVEL SECURITY;

CREATE TABLE customers (
    tenant_id uuid NOT NULL,
    customer_id text NOT NULL,
    first_change_at timestamp with time zone NOT NULL,
    first_paid_at timestamp with time zone,
    mrr numeric NOT NULL,
    currency text NOT NULL,
    plan text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY customers FORCE ROW LEVEL SECURITY;

CREATE TABLE daily_activity (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    users integer NOT NULL,
    new_users integer NOT NULL
);

ALTER TABLE ONLY daily_activity FORCE ROW LEVEL SECURITY;

CREATE TABLE end_users (
    tenant_id uuid NOT NULL,
    user_id text NOT NULL,
    first_seen timestamp with time zone NOT NULL,
    last_seen timestamp with time zone NOT NULL,
    properties jsonb DEFAULT '{}'::jsonb NOT NULL
);

ALTER TABLE ONLY end_users FORCE ROW LEVEL SECURITY;

CREATE TABLE event_client_ids (
    tenant_id uuid NOT NULL,
    client_id text NOT NULL
);

ALTER TABLE ONLY event_client_ids FORCE ROW LEVEL SECURITY;

CREATE TABLE event_counts_daily (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    name text NOT NULL,
    events bigint NOT NULL
);

ALTER TABLE ONLY event_counts_daily FORCE ROW LEVEL SECURITY;

CREATE TABLE events (
    tenant_id uuid NOT NULL,
    id bigint NOT NULL,
    client_id text,
    name text NOT NULL,
    user_id text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    properties jsonb DEFAULT '{}'::jsonb NOT NULL
)
PARTITION BY RANGE (occurred_at);

ALTER TABLE ONLY events FORCE ROW LEVEL SECURITY;

CREATE SEQUENCE events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE events_id_seq OWNED BY events.id;

CREATE TABLE exchange_rates (
    tenant_id uuid NOT NULL,
    currency text NOT NULL,
    day date NOT NULL,
    rate numeric NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT exchange_rates_currency_check CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT exchange_rates_rate_check CHECK ((rate > (0)::numeric))
);

ALTER TABLE ONLY exchange_rates FORCE ROW LEVEL SECURITY;

CREATE TABLE members (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    email text NOT NULL,
    name text NOT NULL,
    password_hash text NOT NULL,
    role text NOT NULL,
    is_operator boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_active_at timestamp with time zone,
    removed_at timestamp with time zone,
    CONSTRAINT members_email_check CHECK ((email = lower(email))),
    CONSTRAINT members_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT members_role_check CHECK ((role = ANY (ARRAY['OWNER'::text, 'ADMIN'::text, 'ANALYST'::text, 'VIEWER'::text])))
);

ALTER TABLE ONLY members FORCE ROW LEVEL SECURITY;

CREATE TABLE pending_segments (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    name text NOT NULL,
    dims text[] NOT NULL,
    user_id text NOT NULL,
    events integer NOT NULL
)
WITH (autovacuum_vacuum_scale_factor='0', autovacuum_vacuum_threshold='10000');

ALTER TABLE ONLY pending_segments FORCE ROW LEVEL SECURITY;

CREATE TABLE pending_users (
    tenant_id uuid NOT NULL,
    user_id text NOT NULL,
    first_seen timestamp with time zone NOT NULL,
    last_seen timestamp with time zone NOT NULL,
    properties jsonb NOT NULL
)
WITH (autovacuum_vacuum_scale_factor='0', autovacuum_vacuum_threshold='10000');

ALTER TABLE ONLY pending_users FORCE ROW LEVEL SECURITY;

CREATE TABLE refresh_tokens (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    member_id uuid NOT NULL,
    family_id uuid NOT NULL,
    token_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    revoked_at timestamp with time zone
);

ALTER TABLE ONLY refresh_tokens FORCE ROW LEVEL SECURITY;

CREATE TABLE revenue_changes (
    tenant_id uuid NOT NULL,
    id bigint NOT NULL,
    client_id text,
    customer_id text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL,
    exponent smallint NOT NULL,
    mrr numeric NOT NULL,
    prev_mrr numeric DEFAULT 0 NOT NULL,
    paid_before boolean DEFAULT false NOT NULL,
    plan text,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    prev_at timestamp with time zone,
    next_at timestamp with time zone,
    CONSTRAINT revenue_changes_amount_minor_check CHECK ((amount_minor >= 0)),
    CONSTRAINT revenue_changes_currency_check CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT revenue_changes_exponent_check CHECK (((exponent >= 0) AND (exponent <= 4))),
    CONSTRAINT revenue_changes_mrr_check CHECK ((mrr >= (0)::numeric))
);

ALTER TABLE ONLY revenue_changes FORCE ROW LEVEL SECURITY;

ALTER TABLE revenue_changes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME revenue_changes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE revenue_periods (
    tenant_id uuid NOT NULL,
    grain "char" NOT NULL,
    period date NOT NULL,
    d_mrr numeric NOT NULL,
    d_paying integer NOT NULL,
    new_mrr numeric NOT NULL,
    reactivation_mrr numeric NOT NULL,
    expansion_mrr numeric NOT NULL,
    contraction_mrr numeric NOT NULL,
    churned_mrr numeric NOT NULL,
    churned integer NOT NULL,
    CONSTRAINT revenue_periods_grain_check CHECK ((grain = ANY (ARRAY['d'::"char", 'w'::"char", 'm'::"char"])))
);

ALTER TABLE ONLY revenue_periods FORCE ROW LEVEL SECURITY;

CREATE TABLE segment_counts_all (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    dims text[] NOT NULL,
    events bigint NOT NULL
);

ALTER TABLE ONLY segment_counts_all FORCE ROW LEVEL SECURITY;

CREATE TABLE segment_counts_daily (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    name text NOT NULL,
    dims text[] NOT NULL,
    events bigint NOT NULL
);

ALTER TABLE ONLY segment_counts_daily FORCE ROW LEVEL SECURITY;

CREATE TABLE segment_days (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    name text NOT NULL,
    dims text[] NOT NULL,
    user_id text NOT NULL,
    events integer NOT NULL
);

ALTER TABLE ONLY segment_days FORCE ROW LEVEL SECURITY;

CREATE TABLE segment_pair_counts (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    pa smallint NOT NULL,
    va text NOT NULL,
    pb smallint NOT NULL,
    vb text,
    events bigint NOT NULL
);

ALTER TABLE ONLY segment_pair_counts FORCE ROW LEVEL SECURITY;

CREATE TABLE segment_transitions (
    tenant_id uuid NOT NULL,
    seg text NOT NULL,
    day date NOT NULL,
    prev_day date NOT NULL,
    users integer NOT NULL
);

ALTER TABLE ONLY segment_transitions FORCE ROW LEVEL SECURITY;

CREATE TABLE segment_user_days (
    tenant_id uuid NOT NULL,
    seg text NOT NULL,
    user_id text NOT NULL,
    day date NOT NULL
);

ALTER TABLE ONLY segment_user_days FORCE ROW LEVEL SECURITY;

CREATE TABLE tenant_usage (
    tenant_id uuid NOT NULL,
    events_total bigint DEFAULT 0 NOT NULL,
    data_version bigint DEFAULT 0 NOT NULL,
    revenue_changes_total bigint DEFAULT 0 NOT NULL,
    revenue_version bigint DEFAULT 0 NOT NULL
);

ALTER TABLE ONLY tenant_usage FORCE ROW LEVEL SECURITY;

CREATE TABLE tenants (
    id uuid NOT NULL,
    name text NOT NULL,
    slug text NOT NULL,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    currency text DEFAULT 'USD'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    retention_months integer,
    tracked_properties text[] DEFAULT '{}'::text[] NOT NULL,
    rollup_properties text[] DEFAULT '{}'::text[] NOT NULL,
    CONSTRAINT tenants_currency_check CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT tenants_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT tenants_retention_months_check CHECK ((retention_months > 0)),
    CONSTRAINT tenants_slug_check CHECK ((slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'::text)),
    CONSTRAINT tenants_tracked_properties_max CHECK ((cardinality(tracked_properties) <= 5))
);

ALTER TABLE ONLY tenants FORCE ROW LEVEL SECURITY;

CREATE TABLE user_days (
    tenant_id uuid NOT NULL,
    user_id text NOT NULL,
    day date NOT NULL
);

ALTER TABLE ONLY user_days FORCE ROW LEVEL SECURITY;

ALTER TABLE ONLY events ALTER COLUMN id SET DEFAULT nextval('events_id_seq'::regclass);

-- Keys and indexes.
ALTER TABLE ONLY active_transitions
    ADD CONSTRAINT active_transitions_pkey PRIMARY KEY (tenant_id, day, prev_day) INCLUDE (users);

ALTER TABLE ONLY api_keys
    ADD CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash);

ALTER TABLE ONLY api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);

ALTER TABLE ONLY audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

ALTER TABLE ONLY customers
    ADD CONSTRAINT customers_pkey PRIMARY KEY (tenant_id, customer_id);

ALTER TABLE ONLY daily_activity
    ADD CONSTRAINT daily_activity_pkey PRIMARY KEY (tenant_id, day);

ALTER TABLE ONLY end_users
    ADD CONSTRAINT end_users_pkey PRIMARY KEY (tenant_id, user_id);

ALTER TABLE ONLY event_client_ids
    ADD CONSTRAINT event_client_ids_pkey PRIMARY KEY (tenant_id, client_id);

ALTER TABLE ONLY event_counts_daily
    ADD CONSTRAINT event_counts_daily_pkey PRIMARY KEY (tenant_id, day, name) INCLUDE (events);

ALTER TABLE ONLY exchange_rates
    ADD CONSTRAINT exchange_rates_pkey PRIMARY KEY (tenant_id, currency, day);

ALTER TABLE ONLY members
    ADD CONSTRAINT members_pkey PRIMARY KEY (id);

ALTER TABLE ONLY refresh_tokens
    ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY refresh_tokens
    ADD CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY revenue_changes
    ADD CONSTRAINT revenue_changes_pkey PRIMARY KEY (tenant_id, id);

ALTER TABLE ONLY revenue_periods
    ADD CONSTRAINT revenue_periods_pkey PRIMARY KEY (tenant_id, grain, period);

ALTER TABLE ONLY segment_transitions
    ADD CONSTRAINT segment_transitions_pkey PRIMARY KEY (tenant_id, seg, day, prev_day) INCLUDE (users);

ALTER TABLE ONLY segment_user_days
    ADD CONSTRAINT segment_user_days_pkey PRIMARY KEY (tenant_id, seg, user_id, day);

ALTER TABLE ONLY tenant_usage
    ADD CONSTRAINT tenant_usage_pkey PRIMARY KEY (tenant_id);

ALTER TABLE ONLY tenants
    ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);

ALTER TABLE ONLY tenants
    ADD CONSTRAINT tenants_slug_key UNIQUE (slug);

ALTER TABLE ONLY user_days
    ADD CONSTRAINT user_days_pkey PRIMARY KEY (tenant_id, user_id, day);

CREATE INDEX api_keys_tenant_idx ON api_keys USING btree (tenant_id, created_at);

CREATE INDEX audit_log_tenant_idx ON audit_log USING btree (tenant_id, id DESC);

CREATE INDEX end_users_first_seen_idx ON end_users USING btree (tenant_id, first_seen);

CREATE INDEX events_time_brin ON ONLY events USING brin (occurred_at);

CREATE INDEX events_tenant_name_time_user_idx ON ONLY events USING btree (tenant_id, name, occurred_at) INCLUDE (user_id);

CREATE INDEX events_tenant_time_idx ON ONLY events USING btree (tenant_id, occurred_at);

CREATE INDEX members_tenant_created_idx ON members USING btree (tenant_id, created_at, id) WHERE (removed_at IS NULL);

CREATE UNIQUE INDEX members_tenant_email_key ON members USING btree (tenant_id, email) WHERE (removed_at IS NULL);

CREATE INDEX pending_segments_tenant_idx ON pending_segments USING btree (tenant_id);

CREATE INDEX pending_users_tenant_idx ON pending_users USING btree (tenant_id);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens USING btree (family_id);

CREATE INDEX refresh_tokens_member_idx ON refresh_tokens USING btree (member_id) WHERE (revoked_at IS NULL);

CREATE UNIQUE INDEX revenue_changes_client_id_idx ON revenue_changes USING btree (tenant_id, client_id) WHERE (client_id IS NOT NULL);

CREATE INDEX revenue_changes_customer_idx ON revenue_changes USING btree (tenant_id, customer_id, occurred_at, id) INCLUDE (mrr);

CREATE INDEX revenue_changes_rate_idx ON revenue_changes USING btree (tenant_id, currency, (((occurred_at AT TIME ZONE 'UTC'::text))::date));

CREATE INDEX revenue_changes_time_idx ON revenue_changes USING btree (tenant_id, occurred_at) INCLUDE (customer_id, prev_at, next_at, mrr, prev_mrr, paid_before);

CREATE INDEX segment_counts_all_by_day ON segment_counts_all USING btree (tenant_id, day) INCLUDE (dims, events);

CREATE UNIQUE INDEX segment_counts_all_key ON segment_counts_all USING btree (tenant_id, day, fahwa_dims_key(dims));

CREATE UNIQUE INDEX segment_counts_daily_key ON segment_counts_daily USING btree (tenant_id, day, name, fahwa_dims_key(dims));

CREATE UNIQUE INDEX segment_days_key ON segment_days USING btree (tenant_id, day, name, fahwa_dims_key(dims), user_id);

CREATE UNIQUE INDEX segment_pair_counts_key ON segment_pair_counts USING btree (tenant_id, pa, pb, md5(va), day, fahwa_dims_key(ARRAY[vb]));

CREATE INDEX tenants_created_idx ON tenants USING btree (created_at, id);

ALTER TABLE ONLY api_keys
    ADD CONSTRAINT api_keys_created_by_fkey FOREIGN KEY (created_by) REFERENCES members(id);

ALTER TABLE ONLY api_keys
    ADD CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE ONLY audit_log
    ADD CONSTRAINT audit_log_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE ONLY customers
    ADD CONSTRAINT customers_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE ONLY exchange_rates
    ADD CONSTRAINT exchange_rates_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE ONLY members
    ADD CONSTRAINT members_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE ONLY refresh_tokens
    ADD CONSTRAINT refresh_tokens_member_id_fkey FOREIGN KEY (member_id) REFERENCES members(id) ON DELETE CASCADE;

ALTER TABLE ONLY refresh_tokens
    ADD CONSTRAINT refresh_tokens_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE ONLY revenue_changes
    ADD CONSTRAINT revenue_changes_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE ONLY revenue_periods
    ADD CONSTRAINT revenue_periods_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE ONLY tenant_usage
    ADD CONSTRAINT tenant_usage_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

-- Row-level security: the server runs as fahwa_app, which these policies bind to the tenant
-- in scope (or, read-only, to operators).
ALTER TABLE active_transitions ENABLE ROW LEVEL SECURITY;

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;

ALTER TABLE customers ENABLE ROW LEVEL SECURITY;

ALTER TABLE daily_activity ENABLE ROW LEVEL SECURITY;

ALTER TABLE end_users ENABLE ROW LEVEL SECURITY;

ALTER TABLE event_client_ids ENABLE ROW LEVEL SECURITY;

ALTER TABLE event_counts_daily ENABLE ROW LEVEL SECURITY;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;

ALTER TABLE exchange_rates ENABLE ROW LEVEL SECURITY;

ALTER TABLE members ENABLE ROW LEVEL SECURITY;

ALTER TABLE pending_segments ENABLE ROW LEVEL SECURITY;

ALTER TABLE pending_users ENABLE ROW LEVEL SECURITY;

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;

ALTER TABLE revenue_changes ENABLE ROW LEVEL SECURITY;

ALTER TABLE revenue_periods ENABLE ROW LEVEL SECURITY;

ALTER TABLE segment_counts_all ENABLE ROW LEVEL SECURITY;

ALTER TABLE segment_counts_daily ENABLE ROW LEVEL SECURITY;

ALTER TABLE segment_days ENABLE ROW LEVEL SECURITY;

ALTER TABLE segment_pair_counts ENABLE ROW LEVEL SECURITY;

ALTER TABLE segment_transitions ENABLE ROW LEVEL SECURITY;

ALTER TABLE segment_user_days ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON active_transitions USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON api_keys USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON audit_log USING (((tenant_id = fahwa_current_tenant()) OR fahwa_is_operator())) WITH CHECK ((NOT (tenant_id IS DISTINCT FROM fahwa_current_tenant())));

CREATE POLICY tenant_isolation ON customers USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON daily_activity USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON end_users USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON event_client_ids USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON event_counts_daily USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON events USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON exchange_rates USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON members USING (((tenant_id = fahwa_current_tenant()) OR fahwa_is_operator())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON pending_segments USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON pending_users USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON refresh_tokens USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON revenue_changes USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON revenue_periods USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON segment_counts_all USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON segment_counts_daily USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON segment_days USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON segment_pair_counts USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON segment_transitions USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON segment_user_days USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON tenant_usage USING (((tenant_id = fahwa_current_tenant()) OR fahwa_is_operator())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON tenants USING (((id = fahwa_current_tenant()) OR fahwa_is_operator())) WITH CHECK ((id = fahwa_current_tenant()));

CREATE POLICY tenant_isolation ON user_days USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

ALTER TABLE tenant_usage ENABLE ROW LEVEL SECURITY;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;

ALTER TABLE user_days ENABLE ROW LEVEL SECURITY;

-- Change capture reads inserts of events and writes of revenue changes through these.
CREATE PUBLICATION fahwa_live WITH (publish = 'insert', publish_via_partition_root = true);

CREATE PUBLICATION fahwa_live_revenue WITH (publish = 'insert, update');

ALTER PUBLICATION fahwa_live ADD TABLE ONLY events;

ALTER PUBLICATION fahwa_live_revenue ADD TABLE ONLY revenue_changes;

-- What the server's role may touch.
GRANT USAGE ON SCHEMA public TO fahwa_app;

GRANT ALL ON FUNCTION fahwa_current_tenant() TO fahwa_app;

GRANT ALL ON FUNCTION fahwa_is_operator() TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE active_transitions TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE api_keys TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE audit_log TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE customers TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE daily_activity TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE end_users TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE event_client_ids TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE event_counts_daily TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE events TO fahwa_app;

GRANT USAGE ON SEQUENCE events_id_seq TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE exchange_rates TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE members TO fahwa_app;

GRANT SELECT,INSERT,DELETE ON TABLE pending_segments TO fahwa_app;

GRANT SELECT,INSERT,DELETE ON TABLE pending_users TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE refresh_tokens TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE revenue_changes TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE revenue_periods TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE segment_counts_all TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE segment_counts_daily TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE segment_days TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE segment_pair_counts TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE segment_transitions TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE segment_user_days TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE tenant_usage TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE tenants TO fahwa_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE user_days TO fahwa_app;
