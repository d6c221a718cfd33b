-- Seconds until the next job of these kinds is due (negative when one is overdue; NULL when none
-- is queued or running): the first queued run_at, or the first lease of a running job to
-- expire. An idle worker sleeps until then rather than a whole poll interval. Running jobs
-- were due when claimed, so both look-ups read the claim index in its order.
CREATE FUNCTION fahwa_jobs_next_due(p_kinds text[])
 RETURNS double precision
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  SELECT extract(epoch FROM least(
    (SELECT j.run_at FROM jobs j
     WHERE j.state = 'queued' AND j.kind = ANY (p_kinds)
     ORDER BY j.run_at, j.id LIMIT 1),
    (SELECT min(j.lease_expires_at) FROM jobs j
     WHERE j.state = 'running' AND j.kind = ANY (p_kinds) AND j.run_at <= now())
  ) - now())::double precision
$$;
GRANT EXECUTE ON FUNCTION fahwa_jobs_next_due(p_kinds text[]) TO fahwa_app;
