CREATE INDEX events_tenant_name_time_idx ON events (tenant_id, name, occurred_at);
DROP INDEX events_tenant_name_time_user_idx;
