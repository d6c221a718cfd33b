DROP FUNCTION fahwa_delete_event_data(uuid);
-- Rows of tenants deleted meanwhile would break the keys; they belong to no one.
DELETE FROM event_client_ids x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM end_users x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM user_days x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM active_transitions x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM event_counts_daily x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
DELETE FROM daily_activity x WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = x.tenant_id);
ALTER TABLE event_client_ids ADD CONSTRAINT event_client_ids_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE end_users ADD CONSTRAINT end_users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE user_days ADD CONSTRAINT user_days_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE active_transitions ADD CONSTRAINT active_transitions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE event_counts_daily ADD CONSTRAINT event_counts_daily_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE daily_activity ADD CONSTRAINT daily_activity_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
