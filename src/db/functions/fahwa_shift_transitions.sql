-- Each affected user's days through the index, whatever the statistics say: for a tenant they
-- did not know yet, the planner chose to scan all of its user days once per affected user
-- (17 s for one flush of 20,000 new user days). OFFSET 0 keeps the subquery from being pulled
-- up into a join the planner may order the other way.
CREATE FUNCTION fahwa_shift_transitions(p_tenant uuid, p_sign integer)
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_custom_plan'
AS $$
BEGIN
  WITH affected AS (
    SELECT user_id, min(day) AS dmin FROM fahwa_new_days GROUP BY user_id
  ), days AS (
    SELECT ud.day,
           coalesce((SELECT max(p.day) FROM user_days p
                     WHERE p.tenant_id = p_tenant AND p.user_id = ud.user_id AND p.day < ud.day),
                    '-infinity'::date) AS prev_day
    FROM affected a CROSS JOIN LATERAL (
      SELECT x.user_id, x.day FROM user_days x
      WHERE x.tenant_id = p_tenant AND x.user_id = a.user_id AND x.day >= a.dmin
      OFFSET 0) ud
  ), counted AS (
    SELECT day, prev_day, count(*)::integer AS n FROM days GROUP BY day, prev_day
  ), transitions AS (
    INSERT INTO active_transitions AS t (tenant_id, day, prev_day, users)
    SELECT p_tenant, day, prev_day, p_sign * n FROM counted ORDER BY day, prev_day
    ON CONFLICT (tenant_id, day, prev_day) DO UPDATE SET users = t.users + excluded.users
  )
  INSERT INTO daily_activity AS d (tenant_id, day, users, new_users)
  SELECT p_tenant, day, p_sign * sum(n), p_sign * coalesce(sum(n) FILTER (WHERE prev_day = '-infinity'), 0)
  FROM counted GROUP BY day ORDER BY day
  ON CONFLICT (tenant_id, day) DO UPDATE SET
    users = d.users + excluded.users, new_users = d.new_users + excluded.new_users;
END
$$;
GRANT EXECUTE ON FUNCTION fahwa_shift_transitions(p_tenant uuid, p_sign integer) TO fahwa_app;
