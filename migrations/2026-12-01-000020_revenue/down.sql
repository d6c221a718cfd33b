ALTER TABLE tenant_usage DROP COLUMN revenue_changes_total;
DROP FUNCTION fahwa_recompute_customers(uuid, text[]);
DROP TABLE customers;
DROP TABLE revenue_changes;
DROP TABLE exchange_rates;
