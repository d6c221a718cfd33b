-- The tenant of an integration, for a provider's webhook delivery, which names only the
-- integration (returns only the tenant's id, and only for a connection that still stands).
CREATE FUNCTION fahwa_integration_tenant(p_id uuid)
 RETURNS uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT tenant_id FROM integrations WHERE id = p_id AND status <> 'DISCONNECTED'
$$;
GRANT EXECUTE ON FUNCTION fahwa_integration_tenant(p_id uuid) TO fahwa_app;
