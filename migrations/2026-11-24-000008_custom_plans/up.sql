-- PL/pgSQL caches plans; after five calls PostgreSQL may switch these statements to a generic
-- plan that cannot see the tenant or the batch, which made the activity rollup about five times
-- slower (EXPLAIN ANALYZE on a 10M-event tenant: 287 ms against 53 ms per 1,000 new user-days).
ALTER FUNCTION fahwa_record_activity(uuid, text[], date[]) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION fahwa_shift_transitions(uuid, integer) SET plan_cache_mode = force_custom_plan;
