-- Report files past their retention, across tenants: each run forgets its file and the keys
-- are returned, for the caller to delete from storage.
CREATE FUNCTION fahwa_expire_report_files(p_before timestamp with time zone, p_limit bigint)
 RETURNS TABLE(file_key text)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public'
AS $$
  WITH old AS (
    SELECT r.id, r.file_key
      FROM report_runs r
     WHERE r.file_key IS NOT NULL AND r.finished_at < p_before
     ORDER BY r.finished_at
     LIMIT p_limit
       FOR UPDATE SKIP LOCKED
  )
  UPDATE report_runs r SET file_key = NULL
    FROM old
   WHERE r.id = old.id
  RETURNING old.file_key
$$;
GRANT EXECUTE ON FUNCTION fahwa_expire_report_files(timestamp with time zone, bigint) TO fahwa_app;
