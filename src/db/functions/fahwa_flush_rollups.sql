-- Merges one tenant's pending ingestion deltas into the rollups, at most `fahwa.flush_piece`
-- (100,000) delta rows per call, one flusher per tenant at a time (without `p_wait`, -1 when
-- another flushes). Each user's day is expanded into its segments once per distinct row of
-- tracked values, not once per event name too (that expansion was 0.87 s of a 200,000-event
-- ingestion's flushes). Returns the delta rows merged.
CREATE FUNCTION fahwa_flush_rollups(p_tenant uuid, p_wait boolean)
 RETURNS integer
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_custom_plan'
 SET jit TO 'off'
AS $$
DECLARE
  users text[];
  days date[];
  segs text[];
  merged integer;
BEGIN
  IF p_wait THEN
    PERFORM pg_advisory_xact_lock(fahwa_lock_key('flush', p_tenant));
  ELSIF NOT pg_try_advisory_xact_lock(fahwa_lock_key('flush', p_tenant)) THEN
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
  -- Summed per day and values first (a few hundred rows), then expanded into pairs.
  INSERT INTO segment_pair_counts AS s (tenant_id, day, pa, va, pb, vb, events)
    SELECT p_tenant, d.day, p.pa, p.va, p.pb, p.vb, sum(d.events)
    FROM (SELECT day, dims, sum(events) AS events FROM fahwa_flush_deltas GROUP BY day, dims) d,
         fahwa_value_pairs(d.dims) AS p
    GROUP BY 2, 3, 4, 5, 6 ORDER BY 3, 5, md5(p.va), 2, fahwa_dims_key(ARRAY[p.vb])
    ON CONFLICT (tenant_id, pa, pb, md5(va), day, fahwa_dims_key(ARRAY[vb]))
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
GRANT EXECUTE ON FUNCTION fahwa_flush_rollups(p_tenant uuid, p_wait boolean) TO fahwa_app;
