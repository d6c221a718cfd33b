-- Which of these sessions (family, member, role: what access tokens claim) have ended: signed
-- out, member removed, role changed (each revokes the session's refresh tokens), tenant
-- deleted. Asked by every request (remembered for a second) and for open WebSockets. Before any
-- tenant is in scope, so it sees every tenant's members and returns only ids.
CREATE FUNCTION fahwa_ended_sessions(p_families uuid[], p_members uuid[], p_roles text[])
 RETURNS SETOF uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT s.family
  FROM unnest(p_families, p_members, p_roles) AS s(family, member, role)
  WHERE NOT EXISTS (
      SELECT 1 FROM members m
      WHERE m.id = s.member AND m.removed_at IS NULL AND m.role = s.role)
    OR NOT EXISTS (
      SELECT 1 FROM refresh_tokens r
      WHERE r.family_id = s.family AND r.revoked_at IS NULL)
$$;
GRANT EXECUTE ON FUNCTION fahwa_ended_sessions(p_families uuid[], p_members uuid[], p_roles text[]) TO fahwa_app;
