-- A worker takes up to p_limit due jobs of its kinds (src/jobs/queue.rs), in one statement:
-- queued jobs whose time has come, and running jobs whose lease expired (their worker died or
-- stalled), oldest first, skipping rows another worker is claiming. Each begins its next
-- attempt under a lease of p_lease_secs; the attempt number fences every later report.
-- A job whose lease expired with no attempt left fails here instead (expired = true), so that
-- the claiming worker calls its handler's `failed` hook once.
CREATE FUNCTION fahwa_jobs_claim(p_kinds text[], p_limit integer, p_lease_secs double precision, p_worker text)
 RETURNS TABLE(id bigint, kind text, tenant_id uuid, payload jsonb, attempt integer, max_attempts integer, expired boolean, last_error text)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  WITH due AS (
    SELECT j.id FROM jobs j
    WHERE j.kind = ANY (p_kinds)
      AND j.state IN ('queued', 'running')
      -- Redundant (a running job was due when it was claimed), but it stops the index scan
      -- at the first job scheduled for later.
      AND j.run_at <= now()
      AND ((j.state = 'queued' AND j.run_at <= now())
        OR (j.state = 'running' AND j.lease_expires_at <= now()))
    ORDER BY j.run_at, j.id
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  )
  UPDATE jobs j SET
    state = CASE WHEN j.state = 'running' AND j.attempts >= j.max_attempts
                 THEN 'failed' ELSE 'running' END,
    attempts = CASE WHEN j.state = 'running' AND j.attempts >= j.max_attempts
                    THEN j.attempts ELSE j.attempts + 1 END,
    lease_expires_at = CASE WHEN j.state = 'running' AND j.attempts >= j.max_attempts
                            THEN NULL ELSE now() + make_interval(secs => p_lease_secs) END,
    locked_by = CASE WHEN j.state = 'running' AND j.attempts >= j.max_attempts
                     THEN j.locked_by ELSE p_worker END,
    finished_at = CASE WHEN j.state = 'running' AND j.attempts >= j.max_attempts
                       THEN now() END,
    last_error = CASE WHEN j.state = 'running'
                      THEN format('the lease of attempt %s expired: worker %s died or stalled',
                                  j.attempts, j.locked_by)
                      ELSE j.last_error END
  FROM due
  WHERE j.id = due.id
  RETURNING j.id, j.kind, j.tenant_id, j.payload, j.attempts, j.max_attempts,
            j.state = 'failed', j.last_error
$$;
GRANT EXECUTE ON FUNCTION fahwa_jobs_claim(p_kinds text[], p_limit integer, p_lease_secs double precision, p_worker text) TO fahwa_app;
