DROP FUNCTION fahwa_tenant_context(uuid);
