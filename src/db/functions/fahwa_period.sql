-- The period of `grain` ('d', 'w' or 'm') that a local date falls in, named by its first day:
-- weeks from Monday (0001-01-01 was one), months from the 1st. Written as arithmetic so that
-- PostgreSQL inlines it into the statements that bucket rows by day (src/calendar/sql.rs), where
-- a call per row, or date_trunc, was most of their time.
CREATE FUNCTION fahwa_period(p_grain "char", p_day date)
 RETURNS date
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE p_grain
    WHEN 'd' THEN p_day
    WHEN 'w' THEN p_day - (p_day - DATE '0001-01-01') % 7
    ELSE p_day - (date_part('day', p_day)::int4 - 1)
  END
$$;
GRANT EXECUTE ON FUNCTION fahwa_period(p_grain "char", p_day date) TO fahwa_app;
