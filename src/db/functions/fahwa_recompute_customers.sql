-- After changes of `p_customers` at or after `p_since` arrived (in any order) or were
-- converted again: their changes' derived columns, their state, and the periods their changes
-- since `p_since` fall in.
CREATE FUNCTION fahwa_recompute_customers(p_tenant uuid, p_customers text[], p_since timestamp with time zone)
 RETURNS void
 LANGUAGE sql
AS $$
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
GRANT EXECUTE ON FUNCTION fahwa_recompute_customers(p_tenant uuid, p_customers text[], p_since timestamp with time zone) TO fahwa_app;
