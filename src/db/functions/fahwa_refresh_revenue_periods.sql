-- Computes again the periods (every grain) that changes of `p_customers` (all customers when
-- null) at or after `p_since` fall in, from all of the tenant's changes in them. Changes are
-- placed by their local date, as the engagement rollups place events.
CREATE FUNCTION fahwa_refresh_revenue_periods(p_tenant uuid, p_customers text[], p_since timestamp with time zone)
 RETURNS void
 LANGUAGE sql
AS $$
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
GRANT EXECUTE ON FUNCTION fahwa_refresh_revenue_periods(p_tenant uuid, p_customers text[], p_since timestamp with time zone) TO fahwa_app;
