-- Batches of one tenant now run side by side, so two may both find a month's partition missing.
-- The second finds it after the first commits, but this backend's catalog cache may not show it
-- yet: creating it is tried, and "already exists" means done.
CREATE FUNCTION fahwa_ensure_event_partitions(p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
DECLARE
  m date := date_trunc('month', p_from AT TIME ZONE 'UTC')::date;
  last date := date_trunc('month', p_to AT TIME ZONE 'UTC')::date;
  created integer := 0;
  part text;
BEGIN
  WHILE m <= last LOOP
    part := 'events_' || to_char(m, 'YYYY_MM');
    IF to_regclass(part) IS NULL THEN
      PERFORM pg_advisory_xact_lock(fahwa_lock_key('event_partitions'));
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
GRANT EXECUTE ON FUNCTION fahwa_ensure_event_partitions(p_from timestamp with time zone, p_to timestamp with time zone) TO fahwa_app;
