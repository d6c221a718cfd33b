-- Revenue: each change says that a customer's MRR became an amount from a moment on. The
-- amount is kept as sent (integer minor units of its currency) and as converted into the
-- tenant's reporting currency with the rate of its UTC day, exactly (NUMERIC).

-- Units of the tenant's currency that one unit of `currency` was worth on `day`.
CREATE TABLE exchange_rates (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  day date NOT NULL,
  rate numeric NOT NULL CHECK (rate > 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, currency, day)
);

CREATE TABLE revenue_changes (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id bigint GENERATED ALWAYS AS IDENTITY,
  client_id text,
  customer_id text NOT NULL,
  occurred_at timestamptz NOT NULL,
  amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  mrr numeric NOT NULL CHECK (mrr >= 0),
  plan text,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX revenue_changes_client_id_idx ON revenue_changes (tenant_id, client_id)
  WHERE client_id IS NOT NULL;
-- A customer's history in order (its state at any moment), and changes by time.
CREATE INDEX revenue_changes_customer_idx
  ON revenue_changes (tenant_id, customer_id, occurred_at, id) INCLUDE (mrr);
CREATE INDEX revenue_changes_time_idx ON revenue_changes (tenant_id, occurred_at);

-- Each customer's current state, kept by ingestion (out-of-order changes included).
CREATE TABLE customers (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  customer_id text NOT NULL,
  first_change_at timestamptz NOT NULL,
  -- When its MRR first became positive, if ever: later increases from 0 are reactivations.
  first_paid_at timestamptz,
  mrr numeric NOT NULL,
  currency text NOT NULL,
  plan text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, customer_id)
);

ALTER TABLE tenant_usage ADD COLUMN revenue_changes_total bigint NOT NULL DEFAULT 0;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['exchange_rates', 'revenue_changes', 'customers'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = fahwa_current_tenant()) WITH CHECK (tenant_id = fahwa_current_tenant())', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO fahwa_app', t);
  END LOOP;
END $$;
