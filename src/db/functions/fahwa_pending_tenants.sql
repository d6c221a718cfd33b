-- Tenants with deltas waiting, for the background flusher (runs before any tenant is chosen).
CREATE FUNCTION fahwa_pending_tenants()
 RETURNS SETOF uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT DISTINCT tenant_id FROM pending_segments
$$;
GRANT EXECUTE ON FUNCTION fahwa_pending_tenants() TO fahwa_app;
