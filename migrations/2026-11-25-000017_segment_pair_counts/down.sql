-- The functions as migrations 10, 13 and 15 left them.
CREATE OR REPLACE FUNCTION fahwa_flush_rollups(p_tenant uuid, p_wait boolean) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan SET jit = off AS $$
DECLARE
  users text[];
  days date[];
  segs text[];
  merged integer;
BEGIN
  IF p_wait THEN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant::text, 44));
  ELSIF NOT pg_try_advisory_xact_lock(hashtextextended(p_tenant::text, 44)) THEN
    RETURN -1;
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS fahwa_flush_deltas (
    day date, name text, dims text[], user_id text, events integer
  ) ON COMMIT DELETE ROWS;
  DELETE FROM fahwa_flush_deltas;
  -- At most `fahwa.flush_piece` (default 100,000) delta rows per call, so that a backlog is
  -- merged in bounded pieces; callers call again until a call merges nothing.
  WITH gone AS (
    DELETE FROM pending_segments WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM pending_segments WHERE tenant_id = p_tenant
      LIMIT coalesce(nullif(current_setting('fahwa.flush_piece', true), '')::integer, 100000)))
    RETURNING day, name, dims, user_id, events
  )
  INSERT INTO fahwa_flush_deltas
    SELECT day, name, dims, user_id, sum(events)::integer FROM gone GROUP BY 1, 2, 3, 4;
  GET DIAGNOSTICS merged = ROW_COUNT;
  IF merged = 0 THEN
    RETURN 0;
  END IF;

  INSERT INTO segment_days AS s (tenant_id, day, name, dims, user_id, events)
    SELECT p_tenant, day, name, dims, user_id, events FROM fahwa_flush_deltas
    ORDER BY day, name, fahwa_dims_key(dims), user_id
    ON CONFLICT (tenant_id, day, name, fahwa_dims_key(dims), user_id)
    DO UPDATE SET events = s.events + excluded.events;
  INSERT INTO segment_counts_daily AS s (tenant_id, day, name, dims, events)
    SELECT p_tenant, day, name, dims, sum(events) FROM fahwa_flush_deltas
    GROUP BY day, name, dims ORDER BY day, name, fahwa_dims_key(dims)
    ON CONFLICT (tenant_id, day, name, fahwa_dims_key(dims))
    DO UPDATE SET events = s.events + excluded.events;
  INSERT INTO segment_counts_all AS s (tenant_id, day, dims, events)
    SELECT p_tenant, day, dims, sum(events) FROM fahwa_flush_deltas
    GROUP BY day, dims ORDER BY day, fahwa_dims_key(dims)
    ON CONFLICT (tenant_id, day, fahwa_dims_key(dims))
    DO UPDATE SET events = s.events + excluded.events;
  INSERT INTO event_counts_daily AS c (tenant_id, day, name, events)
    SELECT p_tenant, day, name, sum(events) FROM fahwa_flush_deltas
    GROUP BY day, name ORDER BY day, name
    ON CONFLICT (tenant_id, day, name) DO UPDATE SET events = c.events + excluded.events;

  SELECT coalesce(array_agg(user_id), '{}'), coalesce(array_agg(day), '{}') INTO users, days
  FROM (SELECT DISTINCT user_id, day FROM fahwa_flush_deltas) p;
  PERFORM fahwa_record_activity(p_tenant, users, days);
  SELECT coalesce(array_agg(seg), '{}'), coalesce(array_agg(user_id), '{}'), coalesce(array_agg(day), '{}')
  INTO segs, users, days
  FROM (SELECT DISTINCT g.seg, d.user_id, d.day
        FROM (SELECT DISTINCT dims, user_id, day FROM fahwa_flush_deltas) d,
             fahwa_segments(d.dims) AS g(seg)) p;
  IF cardinality(segs) > 0 THEN
    PERFORM fahwa_record_segment_activity(p_tenant, segs, users, days);
  END IF;

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
  -- Whole-tenant sorts spill less with more memory (this transaction only).
  PERFORM set_config('work_mem', '512MB', true);
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

  -- OFFSET 0 keeps each row's values computed once (pulled up, the array was built twice: for
  -- the grouping and for its digest).
  INSERT INTO segment_days (tenant_id, day, name, dims, user_id, events)
    SELECT p_tenant, day, name, dims, user_id, count(*) FROM (
      SELECT day, name, user_id, dims, fahwa_dims_key(dims) AS dk FROM (
        SELECT (occurred_at AT TIME ZONE tz)::date AS day, name, user_id,
               ARRAY(SELECT properties ->> k FROM unnest(keys) WITH ORDINALITY AS u(k, o) ORDER BY o) AS dims
        FROM events WHERE tenant_id = p_tenant OFFSET 0) e0) e
    GROUP BY day, name, dk, user_id, dims
    ORDER BY day, name, dk, user_id;
  INSERT INTO event_counts_daily (tenant_id, day, name, events)
    SELECT p_tenant, day, name, sum(events) FROM segment_days
    WHERE tenant_id = p_tenant GROUP BY day, name ORDER BY day, name;
  -- Summed first and sorted after: the sums are 2% of the rows they come from.
  INSERT INTO segment_counts_daily (tenant_id, day, name, dims, events)
    SELECT p_tenant, day, name, dims, events FROM (
      SELECT day, name, dims, sum(events) AS events FROM segment_days
      WHERE tenant_id = p_tenant GROUP BY day, name, dims OFFSET 0) s
    ORDER BY day, name, fahwa_dims_key(dims);
  INSERT INTO segment_counts_all (tenant_id, day, dims, events)
    SELECT p_tenant, day, dims, events FROM (
      SELECT day, dims, sum(events) AS events FROM segment_counts_daily
      WHERE tenant_id = p_tenant GROUP BY day, dims OFFSET 0) s
    ORDER BY day, fahwa_dims_key(dims);
  INSERT INTO segment_user_days (tenant_id, seg, user_id, day)
    SELECT DISTINCT p_tenant, g.seg, d.user_id, d.day
    FROM (SELECT DISTINCT dims, user_id, day FROM segment_days WHERE tenant_id = p_tenant) d,
         fahwa_segments(d.dims) AS g(seg)
    ORDER BY 2, 3, 4;
  INSERT INTO segment_transitions (tenant_id, seg, day, prev_day, users)
    SELECT p_tenant, seg, day, prev_day, count(*) FROM (
      SELECT seg, day,
             coalesce(lag(day) OVER (PARTITION BY seg, user_id ORDER BY day), '-infinity'::date) AS prev_day
      FROM segment_user_days WHERE tenant_id = p_tenant) s
    GROUP BY seg, day, prev_day ORDER BY seg, day, prev_day;
  INSERT INTO user_days (tenant_id, user_id, day)
    SELECT DISTINCT p_tenant, user_id, day FROM segment_days
    WHERE tenant_id = p_tenant ORDER BY 2, 3;
  INSERT INTO active_transitions (tenant_id, day, prev_day, users)
    SELECT p_tenant, day, prev_day, count(*) FROM (
      SELECT day, coalesce(lag(day) OVER (PARTITION BY user_id ORDER BY day), '-infinity'::date) AS prev_day
      FROM user_days WHERE tenant_id = p_tenant) s
    GROUP BY day, prev_day ORDER BY day, prev_day;
  INSERT INTO daily_activity (tenant_id, day, users, new_users)
    SELECT p_tenant, day, sum(users), coalesce(sum(users) FILTER (WHERE prev_day = '-infinity'), 0)
    FROM active_transitions WHERE tenant_id = p_tenant GROUP BY day ORDER BY day;
  INSERT INTO end_users (tenant_id, user_id, first_seen, last_seen, properties)
    SELECT p_tenant, user_id, min(occurred_at), max(occurred_at),
           (array_agg(properties ORDER BY occurred_at DESC))[1]
    FROM events WHERE tenant_id = p_tenant GROUP BY user_id ORDER BY user_id;
  UPDATE tenant_usage SET
    events_total = (SELECT coalesce(sum(events), 0) FROM event_counts_daily WHERE tenant_id = p_tenant),
    data_version = data_version + 1
  WHERE tenant_id = p_tenant;
END
$$;

CREATE OR REPLACE FUNCTION fahwa_delete_event_data(p_tenant uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE removed bigint;
BEGIN
  -- A flush under way would write rollups from deltas it already took: wait for it.
  PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant::text, 44));
  DELETE FROM events WHERE tenant_id = p_tenant;
  GET DIAGNOSTICS removed = ROW_COUNT;
  DELETE FROM event_client_ids WHERE tenant_id = p_tenant;
  DELETE FROM end_users WHERE tenant_id = p_tenant;
  DELETE FROM user_days WHERE tenant_id = p_tenant;
  DELETE FROM active_transitions WHERE tenant_id = p_tenant;
  DELETE FROM event_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM daily_activity WHERE tenant_id = p_tenant;
  DELETE FROM segment_days WHERE tenant_id = p_tenant;
  DELETE FROM segment_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM segment_counts_all WHERE tenant_id = p_tenant;
  DELETE FROM segment_user_days WHERE tenant_id = p_tenant;
  DELETE FROM segment_transitions WHERE tenant_id = p_tenant;
  DELETE FROM pending_segments WHERE tenant_id = p_tenant;
  DELETE FROM pending_users WHERE tenant_id = p_tenant;
  RETURN removed;
END
$$;

DROP TABLE segment_pair_counts;
DROP FUNCTION fahwa_value_pairs(text[]);
