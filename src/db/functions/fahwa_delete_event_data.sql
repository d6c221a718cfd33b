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
  DELETE FROM end_users WHERE tenant_id = p_tenant;
  DELETE FROM user_days WHERE tenant_id = p_tenant;
  DELETE FROM active_transitions WHERE tenant_id = p_tenant;
  DELETE FROM event_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM daily_activity WHERE tenant_id = p_tenant;
  DELETE FROM segment_days WHERE tenant_id = p_tenant;
  DELETE FROM segment_counts_daily WHERE tenant_id = p_tenant;
  DELETE FROM segment_counts_all WHERE tenant_id = p_tenant;
  DELETE FROM segment_pair_counts WHERE tenant_id = p_tenant;
  DELETE FROM segment_user_days WHERE tenant_id = p_tenant;
  DELETE FROM segment_transitions WHERE tenant_id = p_tenant;
  DELETE FROM pending_segments WHERE tenant_id = p_tenant;
  DELETE FROM pending_users WHERE tenant_id = p_tenant;
  RETURN removed;
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_delete_event_data(p_tenant uuid) TO fahwa_app;
