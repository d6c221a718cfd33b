-- Adds (user, local day) pairs to user_days and keeps active_transitions exact, also for late
-- events: for every user with a new day, the transitions from its earliest new day on are taken
-- out as they were and put back as they are now. Callers hold the tenant's ingestion lock.
CREATE FUNCTION fahwa_record_activity(p_tenant uuid, p_users text[], p_days date[])
 RETURNS integer
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_custom_plan'
AS $$
DECLARE added integer;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS fahwa_new_days (user_id text, day date) ON COMMIT DELETE ROWS;
  TRUNCATE fahwa_new_days;
  INSERT INTO fahwa_new_days
    SELECT DISTINCT t.u, t.d FROM unnest(p_users, p_days) AS t(u, d)
    WHERE NOT EXISTS (
      SELECT 1 FROM user_days x WHERE x.tenant_id = p_tenant AND x.user_id = t.u AND x.day = t.d);
  GET DIAGNOSTICS added = ROW_COUNT;
  IF added = 0 THEN
    RETURN 0;
  END IF;

  PERFORM fahwa_shift_transitions(p_tenant, -1);
  INSERT INTO user_days (tenant_id, user_id, day)
    SELECT p_tenant, user_id, day FROM fahwa_new_days ORDER BY user_id, day;
  PERFORM fahwa_shift_transitions(p_tenant, 1);
  RETURN added;
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_record_activity(p_tenant uuid, p_users text[], p_days date[]) TO fahwa_app;
