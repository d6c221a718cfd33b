-- The segments of one row of tracked values: one per present value.
CREATE FUNCTION fahwa_segments(p_dims text[])
 RETURNS SETOF text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $$
  SELECT k || ':' || md5(p_dims[k]) FROM generate_subscripts(p_dims, 1) AS k WHERE p_dims[k] IS NOT NULL
$$;
