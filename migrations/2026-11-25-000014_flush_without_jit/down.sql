ALTER FUNCTION fahwa_flush_rollups(uuid, boolean) RESET jit;
