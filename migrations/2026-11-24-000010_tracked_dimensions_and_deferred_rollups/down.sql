DROP FUNCTION fahwa_tenant_context(uuid);
-- What an analytics request needs before it knows whether the metric cache can answer: the
-- tenant's time zone and data version, in one statement and no transaction. The caller has
-- already been authenticated for this tenant; nothing else is returned.
CREATE FUNCTION fahwa_tenant_context(p_tenant uuid)
RETURNS TABLE (timezone text, data_version bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT t.timezone, coalesce(u.data_version, 0)
  FROM tenants t LEFT JOIN tenant_usage u ON u.tenant_id = t.id
  WHERE t.id = p_tenant
$$;
GRANT EXECUTE ON FUNCTION fahwa_tenant_context(uuid) TO fahwa_app;


CREATE OR REPLACE FUNCTION fahwa_rebuild_rollups(p_tenant uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE tz text;
BEGIN
  SELECT timezone INTO tz FROM tenants WHERE id = p_tenant;
  DELETE FROM event_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM active_transitions WHERE tenant_id = p_tenant;
  DELETE FROM daily_activity WHERE tenant_id = p_tenant;
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
  RETURN removed;
END
$$;


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

CREATE OR REPLACE FUNCTION fahwa_ensure_event_partitions(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  m date := date_trunc('month', p_from AT TIME ZONE 'UTC')::date;
  last date := date_trunc('month', p_to AT TIME ZONE 'UTC')::date;
  created integer := 0;
  part text;
BEGIN
  WHILE m <= last LOOP
    part := 'events_' || to_char(m, 'YYYY_MM');
    IF to_regclass(part) IS NULL THEN
      PERFORM pg_advisory_xact_lock(hashtext('fahwa_event_partitions'));
      IF to_regclass(part) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
          part, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        created := created + 1;
      END IF;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
  RETURN created;
END
$$;


DROP FUNCTION fahwa_pending_tenants();
DROP FUNCTION fahwa_flush_rollups(uuid, boolean);
DROP FUNCTION fahwa_record_segment_activity(uuid, text[], text[], date[]);
DROP FUNCTION fahwa_shift_segment_transitions(uuid, integer);
DROP FUNCTION fahwa_segments(text[]);
DROP TABLE segment_counts_all;
DROP TABLE segment_transitions;
DROP TABLE segment_user_days;
DROP TABLE segment_counts_daily;
DROP TABLE pending_users;
DROP TABLE pending_segments;
DROP TABLE segment_days;
DROP FUNCTION fahwa_dims_key(text[]);
ALTER TABLE tenants DROP CONSTRAINT tenants_tracked_properties_max,
  DROP COLUMN tracked_properties, DROP COLUMN rollup_properties;
