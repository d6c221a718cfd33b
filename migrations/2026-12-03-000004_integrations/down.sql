DROP TABLE revenue_changes_waiting, webhook_deliveries, integration_objects, integrations;
