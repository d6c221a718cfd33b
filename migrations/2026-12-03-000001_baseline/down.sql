-- Everything the baseline made (the replaceable layer's functions are dropped before it).
DROP PUBLICATION IF EXISTS fahwa_live, fahwa_live_revenue;
DROP TABLE active_transitions, api_keys, audit_log, customers, daily_activity, end_users, event_client_ids, event_counts_daily, events, exchange_rates, members, pending_segments, pending_users, refresh_tokens, revenue_changes, revenue_periods, segment_counts_all, segment_counts_daily, segment_days, segment_pair_counts, segment_transitions, segment_user_days, tenant_usage, tenants, user_days CASCADE;
DROP FUNCTION fahwa_dims_key(text[]);
DROP FUNCTION fahwa_is_operator();
DROP FUNCTION fahwa_current_tenant();
REVOKE USAGE ON SCHEMA public FROM fahwa_app;
