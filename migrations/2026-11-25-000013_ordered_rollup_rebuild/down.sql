-- The rebuild as migration 10 left it.
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
  DELETE FROM segment_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM segment_counts_all WHERE tenant_id = p_tenant;
  DELETE FROM segment_user_days WHERE tenant_id = p_tenant;
  DELETE FROM segment_transitions WHERE tenant_id = p_tenant;

  INSERT INTO event_counts_daily (tenant_id, day, name, events)
    SELECT p_tenant, (occurred_at AT TIME ZONE tz)::date, name, count(*)
    FROM events WHERE tenant_id = p_tenant GROUP BY 2, 3;
  INSERT INTO segment_days (tenant_id, day, name, dims, user_id, events)
    SELECT p_tenant, day, name, dims, user_id, count(*) FROM (
      SELECT (occurred_at AT TIME ZONE tz)::date AS day, name, user_id,
             ARRAY(SELECT properties ->> k FROM unnest(keys) WITH ORDINALITY AS u(k, o) ORDER BY o) AS dims
      FROM events WHERE tenant_id = p_tenant) e
    GROUP BY day, name, dims, user_id;
  INSERT INTO segment_counts_daily (tenant_id, day, name, dims, events)
    SELECT p_tenant, day, name, dims, sum(events) FROM segment_days
    WHERE tenant_id = p_tenant GROUP BY day, name, dims;
  INSERT INTO segment_counts_all (tenant_id, day, dims, events)
    SELECT p_tenant, day, dims, sum(events) FROM segment_counts_daily
    WHERE tenant_id = p_tenant GROUP BY day, dims;
  INSERT INTO segment_user_days (tenant_id, seg, user_id, day)
    SELECT DISTINCT p_tenant, g.seg, s.user_id, s.day
    FROM segment_days s, fahwa_segments(s.dims) AS g(seg) WHERE s.tenant_id = p_tenant;
  INSERT INTO segment_transitions (tenant_id, seg, day, prev_day, users)
    SELECT p_tenant, seg, day, prev_day, count(*) FROM (
      SELECT seg, day,
             coalesce(lag(day) OVER (PARTITION BY seg, user_id ORDER BY day), '-infinity'::date) AS prev_day
      FROM segment_user_days WHERE tenant_id = p_tenant) s
    GROUP BY seg, day, prev_day;
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
