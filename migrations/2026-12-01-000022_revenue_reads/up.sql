-- Revenue totals per tenant-local day, week (from Monday) and month, with each customer's
-- changes netted over the period as ChartMogul does, so that a dashboard reads one row per
-- whole bucket instead of every change. Each change also records when its customer's previous
-- and next changes happened: whether it is a customer's first or last change inside any span
-- is then a comparison on the row itself, without a window over the customer's history. And
-- a version of the revenue changes alone lets servers keep a copy of them in memory.

ALTER TABLE revenue_changes ADD COLUMN prev_at timestamptz, ADD COLUMN next_at timestamptz;

-- The period of `grain` ('d', 'w' or 'm') that a local date falls in, named by its first day.
CREATE FUNCTION fahwa_period(p_grain "char", p_day date) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE p_grain
    WHEN 'd' THEN p_day
    WHEN 'w' THEN p_day - (extract(isodow FROM p_day)::int - 1)
    ELSE p_day - (extract(day FROM p_day)::int - 1)
  END
$$;

CREATE TABLE revenue_periods (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  grain "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
  -- The period's first local day in the tenant's time zone.
  period date NOT NULL,
  -- How the period moved MRR and paying customers (every change counted).
  d_mrr numeric NOT NULL,
  d_paying integer NOT NULL,
  -- Movements, each customer netted from its MRR before its first change in the period to
  -- its MRR after its last one.
  new_mrr numeric NOT NULL,
  reactivation_mrr numeric NOT NULL,
  expansion_mrr numeric NOT NULL,
  contraction_mrr numeric NOT NULL,
  churned_mrr numeric NOT NULL,
  churned integer NOT NULL,
  PRIMARY KEY (tenant_id, grain, period)
);

-- Computes again the periods (every grain) that changes of `p_customers` (all customers when
-- null) at or after `p_since` fall in, from all of the tenant's changes in them. Changes are
-- placed by their local date, as the engagement rollups place events.
CREATE FUNCTION fahwa_refresh_revenue_periods(p_tenant uuid, p_customers text[], p_since timestamptz)
RETURNS void LANGUAGE sql AS $$
  WITH tz AS (
    SELECT timezone AS name FROM tenants WHERE id = p_tenant
  ), keys AS (
    SELECT DISTINCT g.grain, fahwa_period(g.grain, (c.occurred_at AT TIME ZONE tz.name)::date) AS period
    FROM revenue_changes c, tz, (VALUES ('d'::"char"), ('w'), ('m')) g (grain)
    WHERE c.tenant_id = p_tenant AND c.occurred_at >= p_since
      AND (p_customers IS NULL OR c.customer_id = ANY (p_customers))
  ), bounds AS (
    -- A day wider on each side than the local period, so that the index range holds it
    -- whatever an offset does at its edges; the exact test is on the local date.
    SELECT k.grain, k.period, tz.name,
           (k.period::timestamp AT TIME ZONE tz.name) - interval '1 day' AS lo,
           ((k.period + CASE k.grain WHEN 'd' THEN interval '1 day' WHEN 'w' THEN interval '7 days'
                          ELSE interval '1 month' END) AT TIME ZONE tz.name) + interval '1 day' AS hi
    FROM keys k, tz
  ), ch AS (
    SELECT b.grain, b.period, c.customer_id, c.mrr, c.prev_mrr, c.paid_before,
           c.prev_at IS NULL
             OR fahwa_period(b.grain, (c.prev_at AT TIME ZONE b.name)::date) < b.period AS first,
           c.next_at IS NULL
             OR fahwa_period(b.grain, (c.next_at AT TIME ZONE b.name)::date) > b.period AS last
    FROM bounds b
    JOIN revenue_changes c ON c.tenant_id = p_tenant AND c.occurred_at >= b.lo AND c.occurred_at < b.hi
    WHERE fahwa_period(b.grain, (c.occurred_at AT TIME ZONE b.name)::date) = b.period
  ), per_customer AS (
    SELECT grain, period, customer_id,
           max(prev_mrr) FILTER (WHERE first) AS s,
           max(mrr) FILTER (WHERE last) AS e,
           bool_or(paid_before) FILTER (WHERE first) AS p
    FROM ch WHERE first OR last GROUP BY grain, period, customer_id
  ), moves AS (
    SELECT grain, period,
           coalesce(sum(e) FILTER (WHERE s = 0 AND e > 0 AND NOT p), 0) AS new_mrr,
           coalesce(sum(e) FILTER (WHERE s = 0 AND e > 0 AND p), 0) AS reactivation_mrr,
           coalesce(sum(e - s) FILTER (WHERE s > 0 AND e > s), 0) AS expansion_mrr,
           coalesce(sum(s - e) FILTER (WHERE e > 0 AND e < s), 0) AS contraction_mrr,
           coalesce(sum(s) FILTER (WHERE s > 0 AND e = 0), 0) AS churned_mrr,
           count(*) FILTER (WHERE s > 0 AND e = 0) AS churned
    FROM per_customer GROUP BY grain, period
  ), deltas AS (
    SELECT grain, period, sum(mrr - prev_mrr) AS d_mrr,
           sum((mrr > 0)::int - (prev_mrr > 0)::int) AS d_paying
    FROM ch GROUP BY grain, period
  )
  INSERT INTO revenue_periods AS r (tenant_id, grain, period, d_mrr, d_paying, new_mrr,
    reactivation_mrr, expansion_mrr, contraction_mrr, churned_mrr, churned)
  SELECT p_tenant, d.grain, d.period, d.d_mrr, d.d_paying, m.new_mrr, m.reactivation_mrr,
         m.expansion_mrr, m.contraction_mrr, m.churned_mrr, m.churned
  FROM deltas d JOIN moves m USING (grain, period)
  ON CONFLICT (tenant_id, grain, period) DO UPDATE SET
    d_mrr = excluded.d_mrr, d_paying = excluded.d_paying, new_mrr = excluded.new_mrr,
    reactivation_mrr = excluded.reactivation_mrr, expansion_mrr = excluded.expansion_mrr,
    contraction_mrr = excluded.contraction_mrr, churned_mrr = excluded.churned_mrr,
    churned = excluded.churned;
$$;

-- After the tenant's time zone changed: its periods are other local days.
CREATE FUNCTION fahwa_rebuild_revenue_periods(p_tenant uuid) RETURNS void LANGUAGE sql AS $$
  DELETE FROM revenue_periods WHERE tenant_id = p_tenant;
  SELECT fahwa_refresh_revenue_periods(p_tenant, NULL, '-infinity');
$$;

DROP FUNCTION fahwa_recompute_customers(uuid, text[], timestamptz);

-- After changes of `p_customers` at or after `p_since` arrived (in any order) or were
-- converted again: their changes' derived columns, their state, and the periods their changes
-- since `p_since` fall in.
CREATE FUNCTION fahwa_recompute_customers(p_tenant uuid, p_customers text[], p_since timestamptz)
RETURNS void LANGUAGE sql AS $$
  UPDATE revenue_changes c
  SET prev_mrr = d.prev_mrr, paid_before = d.paid_before, prev_at = d.prev_at, next_at = d.next_at
  FROM (
    SELECT id,
           coalesce(lag(mrr) OVER w, 0) AS prev_mrr,
           coalesce(bool_or(mrr > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false)
             AS paid_before,
           lag(occurred_at) OVER w AS prev_at,
           lead(occurred_at) OVER w AS next_at
    FROM revenue_changes
    WHERE tenant_id = p_tenant AND customer_id = ANY (p_customers)
    WINDOW w AS (PARTITION BY customer_id ORDER BY occurred_at, id)
  ) d
  WHERE c.tenant_id = p_tenant AND c.id = d.id
    AND (c.prev_mrr <> d.prev_mrr OR c.paid_before <> d.paid_before
         OR c.prev_at IS DISTINCT FROM d.prev_at OR c.next_at IS DISTINCT FROM d.next_at);

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

  SELECT fahwa_refresh_revenue_periods(p_tenant, p_customers, p_since);
$$;

GRANT EXECUTE ON FUNCTION fahwa_period("char", date),
  fahwa_refresh_revenue_periods(uuid, text[], timestamptz),
  fahwa_rebuild_revenue_periods(uuid),
  fahwa_recompute_customers(uuid, text[], timestamptz) TO fahwa_app;

ALTER TABLE revenue_periods ENABLE ROW LEVEL SECURITY;
ALTER TABLE revenue_periods FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON revenue_periods
  USING (tenant_id = fahwa_current_tenant()) WITH CHECK (tenant_id = fahwa_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON revenue_periods TO fahwa_app;

-- Existing revenue: neighbours' times, then every tenant's periods, each in its tenant's scope.
DO $$
DECLARE t uuid;
BEGIN
  PERFORM set_config('fahwa.operator', 'on', true);
  FOR t IN SELECT id FROM tenants LOOP
    PERFORM set_config('fahwa.tenant_id', t::text, true);
    UPDATE revenue_changes c SET prev_at = d.prev_at, next_at = d.next_at
    FROM (
      SELECT id, lag(occurred_at) OVER w AS prev_at, lead(occurred_at) OVER w AS next_at
      FROM revenue_changes WHERE tenant_id = t
      WINDOW w AS (PARTITION BY customer_id ORDER BY occurred_at, id)
    ) d
    WHERE c.tenant_id = t AND c.id = d.id;
    PERFORM fahwa_rebuild_revenue_periods(t);
  END LOOP;
  PERFORM set_config('fahwa.tenant_id', '', true);
  PERFORM set_config('fahwa.operator', '', true);
END $$;

DROP TABLE revenue_days;

-- A range's changes with what it takes to find each customer's first and last change in it,
-- read from the index alone.
DROP INDEX revenue_changes_time_idx;
CREATE INDEX revenue_changes_time_idx ON revenue_changes (tenant_id, occurred_at)
  INCLUDE (customer_id, prev_at, next_at, mrr, prev_mrr, paid_before);

-- A version of each tenant's revenue changes alone, raised by every statement that writes
-- them, whoever runs it: servers keep a copy of a tenant's changes in memory for range totals
-- and use it only while this still equals the version it was read at. Event ingestion does
-- not move it, so a busy event stream leaves the copy valid.
ALTER TABLE tenant_usage ADD COLUMN revenue_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION fahwa_raise_revenue_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE tenant_usage SET revenue_version = revenue_version + 1
  WHERE tenant_id IN (SELECT DISTINCT tenant_id FROM written);
  RETURN NULL;
END $$;

-- A trigger with transition tables takes one event.
CREATE TRIGGER revenue_changes_inserted AFTER INSERT ON revenue_changes
  REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
CREATE TRIGGER revenue_changes_updated AFTER UPDATE ON revenue_changes
  REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
CREATE TRIGGER revenue_changes_deleted AFTER DELETE ON revenue_changes
  REFERENCING OLD TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
