-- Every row written to these tables checked its tenant by foreign key, and every check locked the
-- tenant's row (KEY SHARE) - thousands per ingest batch, shared by concurrent batches. Events never
-- had the key (partitioned); deleting a tenant now deletes its event data explicitly
-- (fahwa_delete_event_data), and row-level security keeps the rows of a tenant to itself.
ALTER TABLE event_client_ids DROP CONSTRAINT event_client_ids_tenant_id_fkey;
ALTER TABLE end_users DROP CONSTRAINT end_users_tenant_id_fkey;
ALTER TABLE user_days DROP CONSTRAINT user_days_tenant_id_fkey;
ALTER TABLE active_transitions DROP CONSTRAINT active_transitions_tenant_id_fkey;
ALTER TABLE event_counts_daily DROP CONSTRAINT event_counts_daily_tenant_id_fkey;
ALTER TABLE daily_activity DROP CONSTRAINT daily_activity_tenant_id_fkey;

-- Removes a tenant's events and everything derived from them (runs in the tenant's scope).
CREATE FUNCTION fahwa_delete_event_data(p_tenant uuid) RETURNS bigint
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
  RETURN removed;
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_delete_event_data(uuid) TO fahwa_app;
