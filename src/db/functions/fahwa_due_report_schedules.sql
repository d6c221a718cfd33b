-- Report schedules due at p_now, across tenants: the scheduler then takes each one in its
-- tenant's scope (and skips any another instance holds).
CREATE FUNCTION fahwa_due_report_schedules(p_now timestamp with time zone, p_limit bigint)
 RETURNS TABLE(tenant_id uuid, report_id uuid)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT s.tenant_id, s.report_id
    FROM report_schedules s
   WHERE s.next_run_at <= p_now
   ORDER BY s.next_run_at
   LIMIT p_limit
$$;
GRANT EXECUTE ON FUNCTION fahwa_due_report_schedules(timestamp with time zone, bigint) TO fahwa_app;
