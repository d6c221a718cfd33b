-- A version of each tenant's revenue changes alone, raised by every statement that writes
-- them, whoever runs it: servers keep a copy of a tenant's changes in memory for range totals
-- and use it only while this still equals the version it was read at. Event ingestion does
-- not move it, so a busy event stream leaves the copy valid.
ALTER TABLE tenant_usage ADD COLUMN revenue_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION fahwa_raise_revenue_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE tenant_usage SET revenue_version = revenue_version + 1
  WHERE tenant_id IN (SELECT DISTINCT tenant_id FROM written);
  RETURN NULL;
END $$;

-- A trigger with transition tables takes one event.
CREATE TRIGGER revenue_changes_inserted AFTER INSERT ON revenue_changes
  REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
CREATE TRIGGER revenue_changes_updated AFTER UPDATE ON revenue_changes
  REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
CREATE TRIGGER revenue_changes_deleted AFTER DELETE ON revenue_changes
  REFERENCING OLD TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
