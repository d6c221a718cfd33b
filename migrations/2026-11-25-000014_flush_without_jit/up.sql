-- The flush's statements were compiled by JIT. Expanding deltas into segments (`fahwa_segments`,
-- inlined as `generate_subscripts`, which PostgreSQL estimates at 1,000 rows per call) looked
-- like millions of rows and crossed `jit_above_cost`, and inlining and optimizing the generated
-- code cost more than the statement it sped up (auto_explain on the bench database: "JIT:
-- Functions: 13, Inlining true, Optimization true" on a 323 ms statement over 6,405 delta rows).
-- A flush is many small statements: no JIT there, nested functions included.
ALTER FUNCTION fahwa_flush_rollups(uuid, boolean) SET jit = off;
