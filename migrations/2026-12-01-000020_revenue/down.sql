ALTER TABLE tenant_usage DROP COLUMN revenue_changes_total;
DROP FUNCTION fahwa_recompute_customers(uuid, text[], timestamptz);
DROP TABLE revenue_days;
DROP TABLE customers;
DROP TABLE revenue_changes;
DROP TABLE exchange_rates;
