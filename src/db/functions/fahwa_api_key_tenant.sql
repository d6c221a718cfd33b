-- The tenant of an API key, found by its hash before any tenant is in scope (returns only the
-- tenant's id).
CREATE FUNCTION fahwa_api_key_tenant(p_hash bytea)
 RETURNS uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT tenant_id FROM api_keys WHERE key_hash = p_hash
$$;
GRANT EXECUTE ON FUNCTION fahwa_api_key_tenant(p_hash bytea) TO fahwa_app;
