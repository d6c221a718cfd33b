-- Drops whole monthly partitions of events that end on or before p_cutoff (every tenant's
-- retention must allow it; the caller checks). Runs as the owner: the server may not drop tables.
CREATE FUNCTION fahwa_drop_event_partitions_before(p_cutoff timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
DECLARE
  part record;
  dropped integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(fahwa_lock_key('event_partitions'));
  FOR part IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'
  LOOP
    IF ((to_date(substr(part.relname, 8), 'YYYY_MM') + interval '1 month')::timestamp AT TIME ZONE 'UTC') <= p_cutoff THEN
      EXECUTE format('DROP TABLE %I', part.relname);
      dropped := dropped + 1;
    END IF;
  END LOOP;
  RETURN dropped;
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_drop_event_partitions_before(p_cutoff timestamp with time zone) TO fahwa_app;
