-- Connections to providers (Stripe, PayPal, ...): sealed credentials, where a sync stands, the
-- providers' objects as last seen, and the ledger of webhook deliveries.

CREATE TABLE integrations (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider text NOT NULL CHECK (provider IN ('STRIPE', 'PAYPAL', 'SALESFORCE', 'HUBSPOT',
        'MIXPANEL', 'AMPLITUDE', 'GOOGLE_ADS', 'FACEBOOK_ADS')),
    status text NOT NULL CHECK (status IN ('CONNECTED', 'SYNCING', 'ERROR', 'DISCONNECTED')),
    -- Sealed by the vault (`<key id>:<nonce and ciphertext>`), bound to the integration's id.
    credentials text NOT NULL,
    webhook_secret text,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_sync_at timestamptz,
    last_error text,
    -- Where the running sync resumes; null when no sync is under way.
    checkpoint jsonb,
    disconnected_at timestamptz
);

CREATE INDEX integrations_tenant_id_idx ON integrations (tenant_id, id);

-- A provider object (a subscription) as Fahwa last applied it, and its MRR over time as Fahwa
-- knows it: `steps` before `observed_at` are history, later ones follow from the object.
CREATE TABLE integration_objects (
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    integration_id uuid NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    object_id text NOT NULL CHECK (octet_length(object_id) BETWEEN 1 AND 255),
    customer_id text NOT NULL CHECK (octet_length(customer_id) BETWEEN 1 AND 255),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    observed_at timestamptz NOT NULL,
    -- `[[unix seconds, minor units], ...]`, in time order.
    steps jsonb NOT NULL,
    -- What the object holds that MRR leaves out (metered prices, ...), said once per object.
    left_out text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, object_id)
);

CREATE INDEX integration_objects_customer_idx ON integration_objects (integration_id, customer_id);

-- Every delivery accepted once per provider event id: a replay finds its row and stops.
CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    integration_id uuid NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    provider_event_id text NOT NULL CHECK (octet_length(provider_event_id) BETWEEN 1 AND 255),
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    outcome text,
    UNIQUE (integration_id, provider_event_id)
);

CREATE INDEX webhook_deliveries_received_at_idx ON webhook_deliveries (received_at);

-- Revenue changes from a provider in a currency without a rate for their day: they wait here
-- and move to revenue_changes when the rate is set.
CREATE TABLE revenue_changes_waiting (
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id text NOT NULL,
    customer_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4),
    plan text,
    PRIMARY KEY (tenant_id, client_id)
);

CREATE INDEX revenue_changes_waiting_rate_idx
    ON revenue_changes_waiting (tenant_id, currency, ((occurred_at AT TIME ZONE 'UTC')::date));

ALTER TABLE integrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE integrations FORCE ROW LEVEL SECURITY;
ALTER TABLE integration_objects ENABLE ROW LEVEL SECURITY;
ALTER TABLE integration_objects FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
ALTER TABLE revenue_changes_waiting ENABLE ROW LEVEL SECURITY;
ALTER TABLE revenue_changes_waiting FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON integrations USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));
CREATE POLICY tenant_isolation ON integration_objects USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));
CREATE POLICY tenant_isolation ON webhook_deliveries USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));
CREATE POLICY tenant_isolation ON revenue_changes_waiting USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

GRANT SELECT, INSERT, DELETE, UPDATE ON TABLE integrations, integration_objects,
    webhook_deliveries, revenue_changes_waiting TO fahwa_app;
