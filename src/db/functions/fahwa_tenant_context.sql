-- What an analytics request needs before it knows whether the metric cache can answer: the
-- tenant's time zone and data version, in one statement and no transaction. The caller has
-- already been authenticated for this tenant; nothing else is returned.
CREATE FUNCTION fahwa_tenant_context(p_tenant uuid)
 RETURNS TABLE(timezone text, data_version bigint, rollup_properties text[], pending boolean)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT t.timezone, coalesce(u.data_version, 0), t.rollup_properties,
         EXISTS (SELECT 1 FROM pending_segments p WHERE p.tenant_id = p_tenant)
  FROM tenants t LEFT JOIN tenant_usage u ON u.tenant_id = t.id
  WHERE t.id = p_tenant
$$;
GRANT EXECUTE ON FUNCTION fahwa_tenant_context(p_tenant uuid) TO fahwa_app;
