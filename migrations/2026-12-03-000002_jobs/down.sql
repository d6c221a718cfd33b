-- Everything 2026-12-03-000002_jobs/up.sql made (the fahwa_jobs_* functions are dropped with the
-- replaceable layer before it).
DROP TABLE jobs;
