DROP FUNCTION fahwa_recompute_customers(uuid, text[], timestamptz);
CREATE FUNCTION fahwa_recompute_customers(p_tenant uuid, p_customers text[])
RETURNS void LANGUAGE sql AS $$
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
    mrr = excluded.mrr, currency = excluded.currency, plan = excluded.plan, updated_at = now()
$$;
GRANT EXECUTE ON FUNCTION fahwa_recompute_customers(uuid, text[]) TO fahwa_app;
DROP TABLE revenue_days;
ALTER TABLE revenue_changes DROP COLUMN prev_mrr, DROP COLUMN paid_before;
