-- A worker reports that attempt p_attempt of job p_id succeeded. Fenced: only while that
-- attempt is still the job's current one and running; false when the lease was taken over (the
-- worker must then not report success).
CREATE FUNCTION fahwa_jobs_complete(p_id bigint, p_attempt integer)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  WITH done AS (
    UPDATE jobs SET state = 'succeeded', lease_expires_at = NULL, finished_at = now()
    WHERE id = p_id AND attempts = p_attempt AND state = 'running'
    RETURNING 1
  )
  SELECT EXISTS (SELECT 1 FROM done)
$$;
GRANT EXECUTE ON FUNCTION fahwa_jobs_complete(p_id bigint, p_attempt integer) TO fahwa_app;
