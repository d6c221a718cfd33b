ALTER TABLE tenant_usage DROP COLUMN revenue_changes_total;
DROP TABLE customers;
DROP TABLE revenue_changes;
DROP TABLE exchange_rates;
