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

CREATE OR REPLACE FUNCTION fahwa_rebuild_rollups(p_tenant uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE tz text;
BEGIN
  SELECT timezone INTO tz FROM tenants WHERE id = p_tenant;
  DELETE FROM event_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM active_transitions WHERE tenant_id = p_tenant;
  DELETE FROM user_days WHERE tenant_id = p_tenant;
  DELETE FROM end_users WHERE tenant_id = p_tenant;

  INSERT INTO event_counts_daily (tenant_id, day, name, events)
    SELECT p_tenant, (occurred_at AT TIME ZONE tz)::date, name, count(*)
    FROM events WHERE tenant_id = p_tenant GROUP BY 2, 3;
  INSERT INTO user_days (tenant_id, user_id, day)
    SELECT DISTINCT p_tenant, user_id, (occurred_at AT TIME ZONE tz)::date
    FROM events WHERE tenant_id = p_tenant;
  INSERT INTO active_transitions (tenant_id, day, prev_day, users)
    SELECT p_tenant, day, prev_day, count(*) FROM (
      SELECT day, coalesce(lag(day) OVER (PARTITION BY user_id ORDER BY day), '-infinity'::date) AS prev_day
      FROM user_days WHERE tenant_id = p_tenant) s
    GROUP BY day, prev_day;
  INSERT INTO end_users (tenant_id, user_id, first_seen, last_seen, properties)
    SELECT p_tenant, user_id, min(occurred_at), max(occurred_at),
           (array_agg(properties ORDER BY occurred_at DESC))[1]
    FROM events WHERE tenant_id = p_tenant GROUP BY user_id;
  UPDATE tenant_usage SET
    events_total = (SELECT count(*) FROM events WHERE tenant_id = p_tenant),
    data_version = data_version + 1
  WHERE tenant_id = p_tenant;
END
$$;

DROP TABLE daily_activity;
