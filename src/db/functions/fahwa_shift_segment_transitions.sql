-- As fahwa_shift_transitions, per segment, over the temp table fahwa_new_segment_days.
CREATE FUNCTION fahwa_shift_segment_transitions(p_tenant uuid, p_sign integer)
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_custom_plan'
AS $$
BEGIN
  WITH affected AS (
    SELECT seg, user_id, min(day) AS dmin FROM fahwa_new_segment_days GROUP BY seg, user_id
  ), days AS (
    SELECT ud.seg, ud.day,
           coalesce((SELECT max(p.day) FROM segment_user_days p
                     WHERE p.tenant_id = p_tenant AND p.seg = ud.seg AND p.user_id = ud.user_id
                       AND p.day < ud.day),
                    '-infinity'::date) AS prev_day
    FROM affected a CROSS JOIN LATERAL (
      SELECT x.seg, x.user_id, x.day FROM segment_user_days x
      WHERE x.tenant_id = p_tenant AND x.seg = a.seg AND x.user_id = a.user_id AND x.day >= a.dmin
      OFFSET 0) ud
  )
  INSERT INTO segment_transitions AS t (tenant_id, seg, day, prev_day, users)
  SELECT p_tenant, seg, day, prev_day, p_sign * count(*) FROM days
  GROUP BY seg, day, prev_day ORDER BY seg, day, prev_day
  ON CONFLICT (tenant_id, seg, day, prev_day) DO UPDATE SET users = t.users + excluded.users;
END
$$;
