-- After the tenant's time zone changed: its periods are other local days.
CREATE FUNCTION fahwa_rebuild_revenue_periods(p_tenant uuid)
 RETURNS void
 LANGUAGE sql
AS $$
  DELETE FROM revenue_periods WHERE tenant_id = p_tenant;
  SELECT fahwa_refresh_revenue_periods(p_tenant, NULL, '-infinity');
$$;
GRANT EXECUTE ON FUNCTION fahwa_rebuild_revenue_periods(p_tenant uuid) TO fahwa_app;
