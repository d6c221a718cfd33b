-- Ingestion batches of one tenant now run in parallel, each holding locks only on its own end
-- users (see src/events/rollups.rs). Rows shared between batches (per-day counts, transitions)
-- are therefore always upserted in key order, so that two batches cannot deadlock on them.
CREATE OR REPLACE FUNCTION fahwa_shift_transitions(p_tenant uuid, p_sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  WITH affected AS (
    SELECT user_id, min(day) AS dmin FROM fahwa_new_days GROUP BY user_id
  ), days AS (
    SELECT ud.day,
           coalesce((SELECT max(p.day) FROM user_days p
                     WHERE p.tenant_id = p_tenant AND p.user_id = ud.user_id AND p.day < ud.day),
                    '-infinity'::date) AS prev_day
    FROM user_days ud JOIN affected a ON a.user_id = ud.user_id
    WHERE ud.tenant_id = p_tenant AND ud.day >= a.dmin
  )
  INSERT INTO active_transitions AS t (tenant_id, day, prev_day, users)
  SELECT p_tenant, day, prev_day, p_sign * count(*) FROM days GROUP BY day, prev_day ORDER BY day, prev_day
  ON CONFLICT (tenant_id, day, prev_day) DO UPDATE SET users = t.users + excluded.users;
END
$$;

CREATE OR REPLACE FUNCTION fahwa_record_activity(p_tenant uuid, p_users text[], p_days date[]) RETURNS integer
LANGUAGE plpgsql AS $$
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
