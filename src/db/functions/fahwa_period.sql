-- The period of `grain` ('d', 'w' or 'm') that a local date falls in, named by its first day.
CREATE FUNCTION fahwa_period(p_grain "char", p_day date)
 RETURNS date
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE p_grain
    WHEN 'd' THEN p_day
    WHEN 'w' THEN p_day - (extract(isodow FROM p_day)::int - 1)
    ELSE p_day - (extract(day FROM p_day)::int - 1)
  END
$$;
GRANT EXECUTE ON FUNCTION fahwa_period(p_grain "char", p_day date) TO fahwa_app;
