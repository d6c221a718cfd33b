-- The ordered pairs of one row of tracked values whose first value is present.
CREATE FUNCTION fahwa_value_pairs(p_dims text[])
 RETURNS TABLE(pa smallint, va text, pb smallint, vb text)
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $$
  SELECT a.k::int2, p_dims[a.k], b.k::int2, p_dims[b.k]
  FROM generate_subscripts(p_dims, 1) AS a(k), generate_subscripts(p_dims, 1) AS b(k)
  WHERE a.k <> b.k AND p_dims[a.k] IS NOT NULL
$$;
