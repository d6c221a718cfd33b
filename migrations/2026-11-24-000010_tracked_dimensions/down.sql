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
DROP FUNCTION fahwa_dims(jsonb, text[]);
DROP TABLE segment_days;
DROP FUNCTION fahwa_dims_key(text[]);
ALTER TABLE tenants DROP CONSTRAINT tenants_tracked_properties_max,
  DROP COLUMN tracked_properties, DROP COLUMN rollup_properties;
