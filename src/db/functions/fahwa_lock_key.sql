-- Every advisory lock Fahwa takes, named once: SQL functions and the server (`db::locks`) take
-- them through this key. A name not listed here is an error rather than a lock on nothing.
--   tenant_writes     one tenant's events and rollups: a whole rebuild holds it alone, ingest
--                     batches share it
--   flush             one tenant's rollup flush (deltas merged by one flusher at a time)
--   revenue           one tenant's revenue writes and rates, serialized
--   membership        one tenant's membership changes (adding, removing, changing roles)
--   event_partitions  creating or dropping partitions of events (no tenant)
CREATE FUNCTION fahwa_lock_key(p_lock text, p_tenant uuid DEFAULT NULL)
 RETURNS bigint
 LANGUAGE plpgsql
 IMMUTABLE
AS $$
BEGIN
  IF p_lock NOT IN ('tenant_writes', 'flush', 'revenue', 'membership', 'event_partitions') THEN
    RAISE EXCEPTION 'no advisory lock is named %', p_lock;
  END IF;
  RETURN hashtextextended(p_lock || ':' || coalesce(p_tenant::text, ''), 0);
END $$;
GRANT EXECUTE ON FUNCTION fahwa_lock_key(text, uuid) TO fahwa_app;
