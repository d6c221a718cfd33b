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
  -- The currency's decimal places: amount_minor * 10^-exponent is the amount sent.
  exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4),
  -- In the tenant's currency, converted with the rate of the change's UTC day.
  mrr numeric NOT NULL CHECK (mrr >= 0),
  -- Derived per customer (fahwa_recompute_customers), so that reads need not look back: the
  -- customer's MRR before this change, and whether it had paid before it.
  prev_mrr numeric NOT NULL DEFAULT 0,
  paid_before boolean NOT NULL DEFAULT false,
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
-- The changes a corrected rate converts again.
CREATE INDEX revenue_changes_rate_idx
  ON revenue_changes (tenant_id, currency, ((occurred_at AT TIME ZONE 'UTC')::date));

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

-- How each UTC day moved MRR and paying customers: MRR at any instant is the sum of the days
-- before it plus that day's changes before it.
CREATE TABLE revenue_days (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  day date NOT NULL,
  d_mrr numeric NOT NULL,
  d_paying integer NOT NULL,
  PRIMARY KEY (tenant_id, day) INCLUDE (d_mrr, d_paying)
);

-- After changes of `p_customers` at or after `p_since` arrived (in any order) or were
-- converted again: their changes' derived columns, their state, and the UTC days their
-- changes since `p_since` fall on.
CREATE FUNCTION fahwa_recompute_customers(p_tenant uuid, p_customers text[], p_since timestamptz)
RETURNS void LANGUAGE sql AS $$
  UPDATE revenue_changes c SET prev_mrr = d.prev_mrr, paid_before = d.paid_before
  FROM (
    SELECT id,
           coalesce(lag(mrr) OVER w, 0) AS prev_mrr,
           coalesce(bool_or(mrr > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false)
             AS paid_before
    FROM revenue_changes
    WHERE tenant_id = p_tenant AND customer_id = ANY (p_customers)
    WINDOW w AS (PARTITION BY customer_id ORDER BY occurred_at, id)
  ) d
  WHERE c.tenant_id = p_tenant AND c.id = d.id
    AND (c.prev_mrr <> d.prev_mrr OR c.paid_before <> d.paid_before);

  INSERT INTO customers (tenant_id, customer_id, first_change_at, first_paid_at, mrr, currency, plan)
  SELECT p_tenant, customer_id, min(occurred_at), min(occurred_at) FILTER (WHERE mrr > 0),
         (array_agg(mrr ORDER BY occurred_at DESC, id DESC))[1],
         (array_agg(currency ORDER BY occurred_at DESC, id DESC))[1],
         (array_agg(plan ORDER BY occurred_at DESC, id DESC))[1]
  FROM revenue_changes
  WHERE tenant_id = p_tenant AND customer_id = ANY (p_customers)
  GROUP BY customer_id
  ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
    first_change_at = excluded.first_change_at, first_paid_at = excluded.first_paid_at,
    mrr = excluded.mrr, currency = excluded.currency, plan = excluded.plan, updated_at = now();

  INSERT INTO revenue_days (tenant_id, day, d_mrr, d_paying)
  SELECT p_tenant, a.day, sum(c.mrr - c.prev_mrr),
         sum((c.mrr > 0)::int - (c.prev_mrr > 0)::int)
  FROM (
    SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date AS day FROM revenue_changes
    WHERE tenant_id = p_tenant AND customer_id = ANY (p_customers) AND occurred_at >= p_since
  ) a
  JOIN revenue_changes c ON c.tenant_id = p_tenant
    AND c.occurred_at >= a.day::timestamp AT TIME ZONE 'UTC'
    AND c.occurred_at < (a.day + 1)::timestamp AT TIME ZONE 'UTC'
  GROUP BY a.day
  ON CONFLICT (tenant_id, day) DO UPDATE SET d_mrr = excluded.d_mrr, d_paying = excluded.d_paying;
$$;
GRANT EXECUTE ON FUNCTION fahwa_recompute_customers(uuid, text[], timestamptz) TO fahwa_app;

ALTER TABLE tenant_usage ADD COLUMN revenue_changes_total bigint NOT NULL DEFAULT 0;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['exchange_rates', 'revenue_changes', 'customers', 'revenue_days'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = fahwa_current_tenant()) WITH CHECK (tenant_id = fahwa_current_tenant())', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO fahwa_app', t);
  END LOOP;
END $$;
