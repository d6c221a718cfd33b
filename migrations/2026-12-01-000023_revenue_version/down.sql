DROP TRIGGER revenue_changes_deleted ON revenue_changes;
DROP TRIGGER revenue_changes_updated ON revenue_changes;
DROP TRIGGER revenue_changes_inserted ON revenue_changes;
DROP FUNCTION fahwa_raise_revenue_version();
ALTER TABLE tenant_usage DROP COLUMN revenue_version;
