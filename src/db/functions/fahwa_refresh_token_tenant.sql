-- The tenant of a refresh token, found by its hash before any tenant is in scope (returns only
-- the tenant's id).
CREATE FUNCTION fahwa_refresh_token_tenant(p_hash bytea)
 RETURNS uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT tenant_id FROM refresh_tokens WHERE token_hash = p_hash
$$;
GRANT EXECUTE ON FUNCTION fahwa_refresh_token_tenant(p_hash bytea) TO fahwa_app;
