-- Deletes everything derived from a tenant's events: its users, every rollup and the pending
-- deltas. The one list of those tables, for a rebuild and for deleting the tenant's event data;
-- the caller holds the tenant's flush lock.
CREATE FUNCTION fahwa_clear_event_rollups(p_tenant uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $$
BEGIN
  DELETE FROM pending_segments WHERE tenant_id = p_tenant;
  DELETE FROM pending_users WHERE tenant_id = p_tenant;
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
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_clear_event_rollups(p_tenant uuid) TO fahwa_app;
