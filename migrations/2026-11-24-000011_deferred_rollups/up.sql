-- Ingestion no longer updates the rollups in its own transaction: every batch of a tenant touched
-- the same rows (today's counts and transitions), so concurrent batches waited for each other,
-- and each paid the fixed cost of the activity rollup. A batch now writes its events and its own
-- pre-aggregated deltas (plain inserts); `fahwa_flush_rollups` merges the deltas of many batches
-- into the rollups in one pass. A background task flushes within a fraction of a second, and a
-- read that finds deltas pending flushes before it reads, so every answer stays exact.
CREATE TABLE pending_segments (
  tenant_id uuid NOT NULL,
  day date NOT NULL,
  name text NOT NULL,
  dims text[] NOT NULL,
  user_id text NOT NULL,
  events integer NOT NULL
);
CREATE INDEX pending_segments_tenant_idx ON pending_segments (tenant_id);
CREATE TABLE pending_users (
  tenant_id uuid NOT NULL,
  user_id text NOT NULL,
  first_seen timestamptz NOT NULL,
  last_seen timestamptz NOT NULL,
  properties jsonb NOT NULL
);
CREATE INDEX pending_users_tenant_idx ON pending_users (tenant_id);
ALTER TABLE pending_segments ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_segments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pending_segments
  USING (tenant_id = fahwa_current_tenant())
  WITH CHECK (tenant_id = fahwa_current_tenant());
ALTER TABLE pending_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pending_users
  USING (tenant_id = fahwa_current_tenant())
  WITH CHECK (tenant_id = fahwa_current_tenant());
GRANT SELECT, INSERT, DELETE ON pending_segments, pending_users TO fahwa_app;

-- Merges the tenant's pending deltas into the rollups; returns how many delta rows it merged, or
-- -1 when another transaction is flushing this tenant and p_wait is false. One flusher per tenant
-- at a time (advisory lock 44), so the activity rollup needs no per-user locks.
CREATE FUNCTION fahwa_flush_rollups(p_tenant uuid, p_wait boolean) RETURNS integer
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
GRANT EXECUTE ON FUNCTION fahwa_flush_rollups(uuid, boolean) TO fahwa_app;

-- Tenants with deltas waiting, for the background flusher (runs before any tenant is chosen).
CREATE FUNCTION fahwa_pending_tenants() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT DISTINCT tenant_id FROM pending_segments
$$;
GRANT EXECUTE ON FUNCTION fahwa_pending_tenants() TO fahwa_app;

-- The analytics context also says whether deltas wait to be merged.
DROP FUNCTION fahwa_tenant_context(uuid);
CREATE FUNCTION fahwa_tenant_context(p_tenant uuid)
RETURNS TABLE (timezone text, data_version bigint, rollup_properties text[], pending boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT t.timezone, coalesce(u.data_version, 0), t.rollup_properties,
         EXISTS (SELECT 1 FROM pending_segments p WHERE p.tenant_id = p_tenant)
  FROM tenants t LEFT JOIN tenant_usage u ON u.tenant_id = t.id
  WHERE t.id = p_tenant
$$;
GRANT EXECUTE ON FUNCTION fahwa_tenant_context(uuid) TO fahwa_app;

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

-- Batches of one tenant now run side by side, so two may both find a month's partition missing.
-- The second finds it after the first commits, but this backend's catalog cache may not show it
-- yet: creating it is tried, and "already exists" means done.
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
      BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
          part, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        created := created + 1;
      EXCEPTION WHEN duplicate_table THEN
        NULL;
      END;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
  RETURN created;
END
$$;
