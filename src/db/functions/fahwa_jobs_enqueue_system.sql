-- Enqueues a system job (no tenant: row-level security lets the server's role insert none), in
-- the caller's transaction, and wakes the workers when it commits. Tenant jobs are inserted
-- directly in the tenant's scope (src/jobs/queue.rs).
CREATE FUNCTION fahwa_jobs_enqueue_system(p_kind text, p_payload jsonb, p_run_at timestamp with time zone, p_max_attempts integer)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
DECLARE
  v_id bigint;
BEGIN
  INSERT INTO jobs (kind, tenant_id, payload, run_at, max_attempts)
  VALUES (p_kind, NULL, p_payload, coalesce(p_run_at, now()), p_max_attempts)
  RETURNING id INTO v_id;
  PERFORM pg_notify('fahwa_jobs', p_kind);
  RETURN v_id;
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_jobs_enqueue_system(p_kind text, p_payload jsonb, p_run_at timestamp with time zone, p_max_attempts integer) TO fahwa_app;
