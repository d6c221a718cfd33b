-- Tracked dimensions: up to five event property keys a tenant declares (`tracked_properties`),
-- kept by the rollups so that filters and breakdowns on them read rollup rows, not events.
-- `rollup_properties` is what the rollups hold: it changes only inside a rebuild, in the same
-- transaction as the rows, so readers and writers always agree on what `segment_days.dims` means.
ALTER TABLE tenants
  ADD COLUMN tracked_properties text[] NOT NULL DEFAULT '{}',
  ADD COLUMN rollup_properties text[] NOT NULL DEFAULT '{}',
  ADD CONSTRAINT tenants_tracked_properties_max CHECK (cardinality(tracked_properties) <= 5);

-- Per local day, event name, values of the tracked keys (in `rollup_properties` order) and end
-- user: the number of events. Values are whole (any length), so rows are told apart by a digest
-- of the values; a B-tree entry could not hold long ones.
CREATE TABLE segment_days (
  tenant_id uuid NOT NULL,
  day date NOT NULL,
  name text NOT NULL,
  dims text[] NOT NULL,
  user_id text NOT NULL,
  events integer NOT NULL
);
-- A digest of the values (text output of a text[] does not depend on any setting).
CREATE FUNCTION fahwa_dims_key(p_dims text[]) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT md5(p_dims::text)::uuid $$;
CREATE UNIQUE INDEX segment_days_key
  ON segment_days (tenant_id, day, name, fahwa_dims_key(dims), user_id);
ALTER TABLE segment_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment_days FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON segment_days
  USING (tenant_id = fahwa_current_tenant())
  WITH CHECK (tenant_id = fahwa_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON segment_days TO fahwa_app;

-- The values of `p_keys` in an event's properties, in order (NULL where absent).
CREATE FUNCTION fahwa_dims(p_properties jsonb, p_keys text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(p_properties ->> k ORDER BY o), '{}')
  FROM unnest(p_keys) WITH ORDINALITY AS u(k, o)
$$;

INSERT INTO segment_days (tenant_id, day, name, dims, user_id, events)
  SELECT e.tenant_id, (e.occurred_at AT TIME ZONE t.timezone)::date, e.name, '{}', e.user_id, count(*)
  FROM events e JOIN tenants t ON t.id = e.tenant_id
  GROUP BY 1, 2, 3, 5;

CREATE OR REPLACE FUNCTION fahwa_rebuild_rollups(p_tenant uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  tz text;
  keys text[];
BEGIN
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
  RETURN removed;
END
$$;

-- The analytics context also says which property keys the rollups hold.
DROP FUNCTION fahwa_tenant_context(uuid);
CREATE FUNCTION fahwa_tenant_context(p_tenant uuid)
RETURNS TABLE (timezone text, data_version bigint, rollup_properties text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT t.timezone, coalesce(u.data_version, 0), t.rollup_properties
  FROM tenants t LEFT JOIN tenant_usage u ON u.tenant_id = t.id
  WHERE t.id = p_tenant
$$;
GRANT EXECUTE ON FUNCTION fahwa_tenant_context(uuid) TO fahwa_app;
