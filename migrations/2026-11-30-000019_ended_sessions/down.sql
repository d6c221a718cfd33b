DROP FUNCTION fahwa_ended_sessions(uuid[], uuid[], text[]);
