-- Look-ups that must happen before the tenant is known. Each answers only the one thing its
-- caller needs, by a secret or a public name, and runs with its owner's rights.
CREATE FUNCTION fahwa_tenant_id_by_slug(p_slug text)
 RETURNS uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT id FROM tenants WHERE slug = p_slug
$$;
GRANT EXECUTE ON FUNCTION fahwa_tenant_id_by_slug(p_slug text) TO fahwa_app;
