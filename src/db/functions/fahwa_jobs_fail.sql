-- A worker reports that attempt p_attempt of job p_id failed with p_error. A retryable failure
-- with attempts left queues the job again p_delay_secs from now (and wakes the workers, which
-- then sleep until it is due); anything else fails it for good. Fenced like
-- fahwa_jobs_complete. Returns the job's new state, or NULL when the attempt is no longer the
-- job's (nothing changed).
CREATE FUNCTION fahwa_jobs_fail(p_id bigint, p_attempt integer, p_error text, p_retry boolean, p_delay_secs double precision)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
DECLARE
  v_state text;
  v_kind text;
BEGIN
  UPDATE jobs SET
    state = CASE WHEN p_retry AND attempts < max_attempts THEN 'queued' ELSE 'failed' END,
    run_at = CASE WHEN p_retry AND attempts < max_attempts
                  THEN now() + make_interval(secs => p_delay_secs) ELSE run_at END,
    finished_at = CASE WHEN p_retry AND attempts < max_attempts THEN NULL ELSE now() END,
    lease_expires_at = NULL,
    last_error = p_error
  WHERE id = p_id AND attempts = p_attempt AND state = 'running'
  RETURNING state, kind INTO v_state, v_kind;
  IF v_state = 'queued' THEN
    PERFORM pg_notify('fahwa_jobs', v_kind);
  END IF;
  RETURN v_state;
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_jobs_fail(p_id bigint, p_attempt integer, p_error text, p_retry boolean, p_delay_secs double precision) TO fahwa_app;
