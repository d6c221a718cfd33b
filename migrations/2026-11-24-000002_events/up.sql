-- The event store: one row per event, partitioned by month of occurrence so that old months
-- are dropped as whole partitions. Partitions are created ahead by the server (and on demand
-- for backfills) through fahwa_ensure_event_partitions.
CREATE SEQUENCE events_id_seq AS bigint;

CREATE TABLE events (
  tenant_id uuid NOT NULL,
  id bigint NOT NULL DEFAULT nextval('events_id_seq'),
  client_id text,
  name text NOT NULL,
  user_id text NOT NULL,
  occurred_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  properties jsonb NOT NULL DEFAULT '{}'
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE events_id_seq OWNED BY events.id;

-- Raw scans are by tenant and time (edges of ranges, hourly buckets, unknown-property filters)
-- or by tenant, event name and time (funnels, name filters). BRIN serves time-only maintenance.
CREATE INDEX events_tenant_time_idx ON events (tenant_id, occurred_at);
CREATE INDEX events_tenant_name_time_idx ON events (tenant_id, name, occurred_at);
CREATE INDEX events_time_brin ON events USING brin (occurred_at);

-- Client ids seen per tenant: the idempotency keys of ingestion.
CREATE TABLE event_client_ids (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  client_id text NOT NULL,
  PRIMARY KEY (tenant_id, client_id)
);

CREATE TABLE end_users (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id text NOT NULL,
  first_seen timestamptz NOT NULL,
  last_seen timestamptz NOT NULL,
  properties jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX end_users_first_seen_idx ON end_users (tenant_id, first_seen);

-- Rollups, in the tenant's local days (rebuilt when its time zone changes).
-- user_days: who was active on which day; the exact base for distinct counts.
CREATE TABLE user_days (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id text NOT NULL,
  day date NOT NULL,
  PRIMARY KEY (tenant_id, user_id, day)
);

-- For each day, how many of its active users were last active on prev_day ('-infinity': never
-- before, i.e. new users). Users active in [a, b] = sum over day in [a, b] with prev_day < a,
-- which answers distinct counts of any range from a few hundred rows.
CREATE TABLE active_transitions (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  day date NOT NULL,
  prev_day date NOT NULL,
  users integer NOT NULL,
  PRIMARY KEY (tenant_id, day, prev_day)
);

CREATE TABLE event_counts_daily (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  day date NOT NULL,
  name text NOT NULL,
  events bigint NOT NULL,
  PRIMARY KEY (tenant_id, day, name)
);

ALTER TABLE tenant_usage ADD COLUMN data_version bigint NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN retention_months integer CHECK (retention_months > 0);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['events', 'event_client_ids', 'end_users', 'user_days', 'active_transitions', 'event_counts_daily'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = fahwa_current_tenant()) WITH CHECK (tenant_id = fahwa_current_tenant())', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO fahwa_app', t);
  END LOOP;
END
$$;
GRANT USAGE ON SEQUENCE events_id_seq TO fahwa_app;

-- Creates the monthly partitions covering [p_from, p_to]. Runs as the owner: the server's role
-- may not create tables.
CREATE FUNCTION fahwa_ensure_event_partitions(p_from timestamptz, p_to timestamptz) RETURNS integer
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
GRANT EXECUTE ON FUNCTION fahwa_ensure_event_partitions(timestamptz, timestamptz) TO fahwa_app;

-- Adds (user, local day) pairs to user_days and keeps active_transitions exact, also for late
-- events: for every user with a new day, the transitions from its earliest new day on are taken
-- out as they were and put back as they are now. Callers hold the tenant's ingestion lock.
CREATE FUNCTION fahwa_record_activity(p_tenant uuid, p_users text[], p_days date[]) RETURNS integer
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
  INSERT INTO user_days (tenant_id, user_id, day) SELECT p_tenant, user_id, day FROM fahwa_new_days;
  PERFORM fahwa_shift_transitions(p_tenant, 1);
  RETURN added;
END
$$;

-- Adds (sign = 1) or removes (sign = -1) the transitions of the users in fahwa_new_days, from
-- each one's earliest new day on, as user_days stands now.
CREATE FUNCTION fahwa_shift_transitions(p_tenant uuid, p_sign integer) RETURNS void
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
  SELECT p_tenant, day, prev_day, p_sign * count(*) FROM days GROUP BY day, prev_day
  ON CONFLICT (tenant_id, day, prev_day) DO UPDATE SET users = t.users + excluded.users;
END
$$;

-- Recomputes every rollup of a tenant from its events (bulk loads, time-zone changes).
CREATE FUNCTION fahwa_rebuild_rollups(p_tenant uuid) RETURNS void
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

GRANT EXECUTE ON FUNCTION fahwa_record_activity(uuid, text[], date[]), fahwa_shift_transitions(uuid, integer),
  fahwa_rebuild_rollups(uuid) TO fahwa_app;

SELECT fahwa_ensure_event_partitions(now() - interval '1 month', now() + interval '3 months');
