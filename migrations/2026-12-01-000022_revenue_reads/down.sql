DROP TRIGGER revenue_changes_deleted ON revenue_changes;
DROP TRIGGER revenue_changes_updated ON revenue_changes;
DROP TRIGGER revenue_changes_inserted ON revenue_changes;
DROP FUNCTION fahwa_raise_revenue_version();
ALTER TABLE tenant_usage DROP COLUMN revenue_version;

DROP INDEX revenue_changes_time_idx;
CREATE INDEX revenue_changes_time_idx ON revenue_changes (tenant_id, occurred_at);

CREATE TABLE revenue_days (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  day date NOT NULL,
  d_mrr numeric NOT NULL,
  d_paying integer NOT NULL,
  PRIMARY KEY (tenant_id, day) INCLUDE (d_mrr, d_paying)
);
ALTER TABLE revenue_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE revenue_days FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON revenue_days
  USING (tenant_id = fahwa_current_tenant()) WITH CHECK (tenant_id = fahwa_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON revenue_days TO fahwa_app;

DROP FUNCTION fahwa_recompute_customers(uuid, text[], timestamptz);
DROP FUNCTION fahwa_rebuild_revenue_periods(uuid);
DROP FUNCTION fahwa_refresh_revenue_periods(uuid, text[], timestamptz);
DROP TABLE revenue_periods;
DROP FUNCTION fahwa_period("char", date);
ALTER TABLE revenue_changes DROP COLUMN prev_at, DROP COLUMN next_at;

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

DO $$
DECLARE t uuid;
BEGIN
  PERFORM set_config('fahwa.operator', 'on', true);
  FOR t IN SELECT id FROM tenants LOOP
    PERFORM set_config('fahwa.tenant_id', t::text, true);
    INSERT INTO revenue_days (tenant_id, day, d_mrr, d_paying)
    SELECT t, (occurred_at AT TIME ZONE 'UTC')::date, sum(mrr - prev_mrr),
           sum((mrr > 0)::int - (prev_mrr > 0)::int)
    FROM revenue_changes WHERE tenant_id = t GROUP BY 2;
  END LOOP;
  PERFORM set_config('fahwa.tenant_id', '', true);
  PERFORM set_config('fahwa.operator', '', true);
END $$;
