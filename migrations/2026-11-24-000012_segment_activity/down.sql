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
  ), counted AS (
    SELECT day, prev_day, count(*)::integer AS n FROM days GROUP BY day, prev_day
  ), transitions AS (
    INSERT INTO active_transitions AS t (tenant_id, day, prev_day, users)
    SELECT p_tenant, day, prev_day, p_sign * n FROM counted ORDER BY day, prev_day
    ON CONFLICT (tenant_id, day, prev_day) DO UPDATE SET users = t.users + excluded.users
  )
  INSERT INTO daily_activity AS d (tenant_id, day, users, new_users)
  SELECT p_tenant, day, p_sign * sum(n), p_sign * coalesce(sum(n) FILTER (WHERE prev_day = '-infinity'), 0)
  FROM counted GROUP BY day ORDER BY day
  ON CONFLICT (tenant_id, day) DO UPDATE SET
    users = d.users + excluded.users, new_users = d.new_users + excluded.new_users;
END
$$;
ALTER FUNCTION fahwa_shift_transitions(uuid, integer) SET plan_cache_mode = force_custom_plan;

CREATE OR REPLACE FUNCTION fahwa_flush_rollups(p_tenant uuid, p_wait boolean) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
  users text[];
  days date[];
  merged integer;
BEGIN
  IF p_wait THEN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant::text, 44));
  ELSIF NOT pg_try_advisory_xact_lock(hashtextextended(p_tenant::text, 44)) THEN
    RETURN -1;
  END IF;
  WITH seg AS (
    DELETE FROM pending_segments WHERE tenant_id = p_tenant
    RETURNING day, name, dims, user_id, events
  ), agg AS (
    SELECT day, name, dims, user_id, sum(events)::integer AS events FROM seg GROUP BY 1, 2, 3, 4
  ), segments AS (
    INSERT INTO segment_days AS s (tenant_id, day, name, dims, user_id, events)
    SELECT p_tenant, day, name, dims, user_id, events FROM agg
    ORDER BY day, name, fahwa_dims_key(dims), user_id
    ON CONFLICT (tenant_id, day, name, fahwa_dims_key(dims), user_id)
    DO UPDATE SET events = s.events + excluded.events
  ), counts AS (
    INSERT INTO event_counts_daily AS c (tenant_id, day, name, events)
    SELECT p_tenant, day, name, sum(events) FROM agg GROUP BY day, name ORDER BY day, name
    ON CONFLICT (tenant_id, day, name) DO UPDATE SET events = c.events + excluded.events
  ), pairs AS (
    SELECT DISTINCT user_id, day FROM agg
  )
  SELECT coalesce(array_agg(user_id), '{}'), coalesce(array_agg(day), '{}'),
         (SELECT count(*) FROM seg)
  INTO users, days, merged FROM pairs;
  IF merged = 0 THEN
    RETURN 0;
  END IF;
  PERFORM fahwa_record_activity(p_tenant, users, days);
  WITH gone AS (
    DELETE FROM pending_users WHERE tenant_id = p_tenant
    RETURNING user_id, first_seen, last_seen, properties
  )
  INSERT INTO end_users AS u (tenant_id, user_id, first_seen, last_seen, properties)
  SELECT DISTINCT ON (user_id) p_tenant, user_id, min(first_seen) OVER w, max(last_seen) OVER w, properties
  FROM gone WINDOW w AS (PARTITION BY user_id) ORDER BY user_id, last_seen DESC
  ON CONFLICT (tenant_id, user_id) DO UPDATE SET
    first_seen = least(u.first_seen, excluded.first_seen),
    last_seen = greatest(u.last_seen, excluded.last_seen),
    properties = CASE WHEN excluded.last_seen >= u.last_seen THEN excluded.properties ELSE u.properties END;
  RETURN merged;
END
$$;

CREATE OR REPLACE FUNCTION fahwa_rebuild_rollups(p_tenant uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  tz text;
  keys text[];
BEGIN
  -- No flush runs meanwhile, and pending deltas are dropped: the events already hold them.
  PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant::text, 44));
  -- Whole-tenant aggregations sort less on disk with more memory (this transaction only).
  PERFORM set_config('work_mem', '256MB', true);
  DELETE FROM pending_segments WHERE tenant_id = p_tenant;
  DELETE FROM pending_users WHERE tenant_id = p_tenant;
  UPDATE tenants SET rollup_properties = tracked_properties WHERE id = p_tenant
    RETURNING timezone, rollup_properties INTO tz, keys;
  DELETE FROM event_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM active_transitions WHERE tenant_id = p_tenant;
  DELETE FROM daily_activity WHERE tenant_id = p_tenant;
  DELETE FROM user_days WHERE tenant_id = p_tenant;
  DELETE FROM end_users WHERE tenant_id = p_tenant;
  DELETE FROM segment_days WHERE tenant_id = p_tenant;

  INSERT INTO event_counts_daily (tenant_id, day, name, events)
    SELECT p_tenant, (occurred_at AT TIME ZONE tz)::date, name, count(*)
    FROM events WHERE tenant_id = p_tenant GROUP BY 2, 3;
  INSERT INTO segment_days (tenant_id, day, name, dims, user_id, events)
    SELECT p_tenant, (occurred_at AT TIME ZONE tz)::date, name, fahwa_dims(properties, keys), user_id, count(*)
    FROM events WHERE tenant_id = p_tenant GROUP BY 2, 3, 4, 5;
  INSERT INTO user_days (tenant_id, user_id, day)
    SELECT DISTINCT p_tenant, user_id, (occurred_at AT TIME ZONE tz)::date
    FROM events WHERE tenant_id = p_tenant;
  INSERT INTO active_transitions (tenant_id, day, prev_day, users)
    SELECT p_tenant, day, prev_day, count(*) FROM (
      SELECT day, coalesce(lag(day) OVER (PARTITION BY user_id ORDER BY day), '-infinity'::date) AS prev_day
      FROM user_days WHERE tenant_id = p_tenant) s
    GROUP BY day, prev_day;
  INSERT INTO daily_activity (tenant_id, day, users, new_users)
    SELECT p_tenant, day, sum(users), coalesce(sum(users) FILTER (WHERE prev_day = '-infinity'), 0)
    FROM active_transitions WHERE tenant_id = p_tenant GROUP BY day;
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

CREATE OR REPLACE FUNCTION fahwa_delete_event_data(p_tenant uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE removed bigint;
BEGIN
  DELETE FROM events WHERE tenant_id = p_tenant;
  GET DIAGNOSTICS removed = ROW_COUNT;
  DELETE FROM event_client_ids WHERE tenant_id = p_tenant;
  DELETE FROM end_users WHERE tenant_id = p_tenant;
  DELETE FROM user_days WHERE tenant_id = p_tenant;
  DELETE FROM active_transitions WHERE tenant_id = p_tenant;
  DELETE FROM event_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM daily_activity WHERE tenant_id = p_tenant;
  DELETE FROM segment_days WHERE tenant_id = p_tenant;
  DELETE FROM pending_segments WHERE tenant_id = p_tenant;
  DELETE FROM pending_users WHERE tenant_id = p_tenant;
  RETURN removed;
END
$$;

DROP FUNCTION fahwa_record_segment_activity(uuid, text[], text[], date[]);
DROP FUNCTION fahwa_shift_segment_transitions(uuid, integer);
DROP FUNCTION fahwa_segments(text[]);
DROP TABLE segment_transitions;
DROP TABLE segment_user_days;
DROP TABLE segment_counts_daily;
