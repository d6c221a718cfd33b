ALTER FUNCTION fahwa_shift_transitions(uuid, integer) RESET plan_cache_mode;
ALTER FUNCTION fahwa_record_activity(uuid, text[], date[]) RESET plan_cache_mode;
