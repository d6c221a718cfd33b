-- Authenticating an API key in one statement: what the key may do, found by its hash before any
-- tenant is in scope (every ingest and READ call pays for this).
CREATE FUNCTION fahwa_api_key_by_hash(p_hash bytea)
 RETURNS TABLE(id uuid, tenant_id uuid, scopes text[], revoked boolean, last_used_at timestamp with time zone)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT k.id, k.tenant_id, k.scopes, k.revoked_at IS NOT NULL, k.last_used_at
  FROM api_keys k WHERE k.key_hash = p_hash
$$;
GRANT EXECUTE ON FUNCTION fahwa_api_key_by_hash(p_hash bytea) TO fahwa_app;
