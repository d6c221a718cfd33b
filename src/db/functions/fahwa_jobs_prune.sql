-- Finished jobs older than p_before, deleted (at most p_limit a call), across tenants: the
-- table keeps recent history for people reading it, not every job ever run.
CREATE FUNCTION fahwa_jobs_prune(p_before timestamp with time zone, p_limit integer)
 RETURNS integer
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  WITH gone AS (
    DELETE FROM jobs
     WHERE id IN (SELECT j.id FROM jobs j
                   WHERE j.state IN ('succeeded', 'failed') AND j.finished_at < p_before
                   LIMIT p_limit)
    RETURNING 1
  )
  SELECT count(*)::integer FROM gone
$$;
GRANT EXECUTE ON FUNCTION fahwa_jobs_prune(timestamp with time zone, integer) TO fahwa_app;
