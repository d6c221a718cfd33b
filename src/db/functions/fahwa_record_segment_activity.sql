-- As fahwa_record_activity, per segment: adds (segment, user, day) triples, transitions exact.
CREATE FUNCTION fahwa_record_segment_activity(p_tenant uuid, p_segs text[], p_users text[], p_days date[])
 RETURNS integer
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_custom_plan'
AS $$
DECLARE added integer;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS fahwa_new_segment_days (seg text, user_id text, day date)
    ON COMMIT DELETE ROWS;
  DELETE FROM fahwa_new_segment_days;
  INSERT INTO fahwa_new_segment_days
    SELECT DISTINCT t.s, t.u, t.d FROM unnest(p_segs, p_users, p_days) AS t(s, u, d)
    WHERE NOT EXISTS (
      SELECT 1 FROM segment_user_days x
      WHERE x.tenant_id = p_tenant AND x.seg = t.s AND x.user_id = t.u AND x.day = t.d);
  GET DIAGNOSTICS added = ROW_COUNT;
  IF added = 0 THEN
    RETURN 0;
  END IF;
  PERFORM fahwa_shift_segment_transitions(p_tenant, -1);
  INSERT INTO segment_user_days (tenant_id, seg, user_id, day)
    SELECT p_tenant, seg, user_id, day FROM fahwa_new_segment_days ORDER BY seg, user_id, day;
  PERFORM fahwa_shift_segment_transitions(p_tenant, 1);
  RETURN added;
END
$$;
