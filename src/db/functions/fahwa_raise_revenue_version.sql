-- Raises the revenue version of every tenant whose revenue changes a statement wrote: each
-- server's in-memory copy of a tenant's changes is used only while its version is current.
CREATE FUNCTION fahwa_raise_revenue_version()
 RETURNS trigger
 LANGUAGE plpgsql
AS $$
BEGIN
  UPDATE tenant_usage SET revenue_version = revenue_version + 1
  WHERE tenant_id IN (SELECT DISTINCT tenant_id FROM written);
  RETURN NULL;
END $$;

CREATE TRIGGER revenue_changes_deleted AFTER DELETE ON revenue_changes REFERENCING OLD TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
CREATE TRIGGER revenue_changes_inserted AFTER INSERT ON revenue_changes REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
CREATE TRIGGER revenue_changes_updated AFTER UPDATE ON revenue_changes REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION fahwa_raise_revenue_version();
