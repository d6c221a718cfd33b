-- The job queue (docs/decisions/0020): one row per job, claimed by workers with
-- FOR UPDATE SKIP LOCKED under a lease. The worker's transitions (claim, complete, fail,
-- heartbeat) and system jobs (no tenant) go through the definer functions fahwa_jobs_* of the
-- replaceable layer: they work across tenants, which the server's role cannot see.
CREATE TABLE jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The handler's stable name (never a Rust type name).
    kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    -- NULL for a system job.
    tenant_id uuid REFERENCES tenants(id) ON DELETE CASCADE,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    -- Attempts begun; the current one is the fencing token of every report a worker makes.
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts integer NOT NULL CHECK (max_attempts >= 1),
    run_at timestamp with time zone NOT NULL DEFAULT now(),
    -- Set while running: after it, another worker may take the job over.
    lease_expires_at timestamp with time zone,
    locked_by text,
    last_error text,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    finished_at timestamp with time zone,
    CONSTRAINT jobs_lease_while_running CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
)
-- Every job is updated two or three times and finished rows are kept: vacuum by a count of
-- dead rows, not by a fraction of a table that mostly holds finished jobs (as 0007).
WITH (autovacuum_vacuum_scale_factor='0', autovacuum_vacuum_threshold='5000');

-- What a claim reads, in its order: only the jobs not finished, so the index stays small
-- however many finished rows the table keeps.
CREATE INDEX jobs_claim_idx ON jobs (run_at, id) WHERE state IN ('queued', 'running');

-- A tenant's jobs (and deleting a tenant).
CREATE INDEX jobs_tenant_id_idx ON jobs (tenant_id, created_at);

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;

-- A tenant's jobs are seen and enqueued in its scope only; system jobs (no tenant) in none.
CREATE POLICY tenant_isolation ON jobs
    USING (tenant_id = fahwa_current_tenant())
    WITH CHECK (tenant_id = fahwa_current_tenant());

-- No UPDATE: a job's state changes only through the fenced fahwa_jobs_* functions. DELETE
-- cancels a tenant's job.
GRANT SELECT, INSERT, DELETE ON TABLE jobs TO fahwa_app;
