-- Removes a tenant's events and everything derived from them (runs in the tenant's scope).
CREATE FUNCTION fahwa_delete_event_data(p_tenant uuid)
 RETURNS bigint
 LANGUAGE plpgsql
AS $$
DECLARE removed bigint;
BEGIN
  -- A flush under way would write rollups from deltas it already took: wait for it.
  PERFORM pg_advisory_xact_lock(fahwa_lock_key('flush', p_tenant));
  DELETE FROM events WHERE tenant_id = p_tenant;
  GET DIAGNOSTICS removed = ROW_COUNT;
  DELETE FROM event_client_ids WHERE tenant_id = p_tenant;
  PERFORM fahwa_clear_event_rollups(p_tenant);
  RETURN removed;
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_delete_event_data(p_tenant uuid) TO fahwa_app;
