-- A worker extends the lease of attempt p_attempt of job p_id to p_lease_secs from now while
-- its handler runs. Fenced like fahwa_jobs_complete: false when the job is no longer that
-- attempt's (taken over, or failed for good), and the worker tells its handler.
CREATE FUNCTION fahwa_jobs_heartbeat(p_id bigint, p_attempt integer, p_lease_secs double precision)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  WITH beat AS (
    UPDATE jobs SET lease_expires_at = now() + make_interval(secs => p_lease_secs)
    WHERE id = p_id AND attempts = p_attempt AND state = 'running'
    RETURNING 1
  )
  SELECT EXISTS (SELECT 1 FROM beat)
$$;
GRANT EXECUTE ON FUNCTION fahwa_jobs_heartbeat(p_id bigint, p_attempt integer, p_lease_secs double precision) TO fahwa_app;
