-- Saved reports: their widgets, an optional schedule, and their runs (files rendered by the job
-- queue). Every table is the tenant's and carries its id for row-level security.

CREATE TABLE reports (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    owner_id uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description text CHECK (description IS NULL OR char_length(description) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Ids are time-ordered (v7): newest first is the id order, and the cursor is the id.
CREATE INDEX reports_tenant_id_idx ON reports (tenant_id, id DESC);

CREATE TABLE report_widgets (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    report_id uuid NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    position integer NOT NULL CHECK (position >= 0),
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    metric text NOT NULL CHECK (metric IN ('ACTIVE_USERS', 'NEW_USERS', 'EVENTS', 'MRR', 'ARR',
        'PAYING_CUSTOMERS', 'ARPU', 'CUSTOMER_CHURN_RATE', 'REVENUE_CHURN_RATE', 'NET_NEW_MRR')),
    granularity text NOT NULL CHECK (granularity IN ('HOUR', 'DAY', 'WEEK', 'MONTH')),
    range text NOT NULL CHECK (range IN ('LAST_7_DAYS', 'LAST_30_DAYS', 'LAST_90_DAYS',
        'LAST_12_MONTHS', 'MONTH_TO_DATE', 'YEAR_TO_DATE')),
    event_name text CHECK (event_name IS NULL OR (octet_length(event_name) BETWEEN 1 AND 200
        AND metric = 'EVENTS')),
    UNIQUE (report_id, position)
);

CREATE TABLE report_schedules (
    report_id uuid PRIMARY KEY REFERENCES reports(id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    cron text NOT NULL CHECK (char_length(cron) BETWEEN 1 AND 200),
    format text NOT NULL CHECK (format IN ('CSV', 'JSON')),
    -- Members; whether each still belongs to the tenant is checked when mail goes out.
    recipients uuid[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 50),
    next_run_at timestamptz NOT NULL
);

CREATE INDEX report_schedules_next_run_at_idx ON report_schedules (next_run_at);

CREATE TABLE report_runs (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    report_id uuid NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    format text NOT NULL CHECK (format IN ('CSV', 'JSON')),
    status text NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    progress real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    requested_by uuid,
    -- The schedule's occurrence this run is for: at most one run per occurrence.
    scheduled_for timestamptz,
    -- Whether the file holds revenue (VIEWERs get no link to it).
    has_revenue boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    error text,
    file_key text,
    file_bytes bigint,
    row_count bigint,
    UNIQUE (report_id, scheduled_for)
);

CREATE INDEX report_runs_report_id_idx ON report_runs (report_id, id DESC);
CREATE INDEX report_runs_finished_at_idx ON report_runs (finished_at) WHERE file_key IS NOT NULL;

ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE reports FORCE ROW LEVEL SECURITY;
ALTER TABLE report_widgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE report_widgets FORCE ROW LEVEL SECURITY;
ALTER TABLE report_schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE report_schedules FORCE ROW LEVEL SECURITY;
ALTER TABLE report_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE report_runs FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON reports USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));
CREATE POLICY tenant_isolation ON report_widgets USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));
CREATE POLICY tenant_isolation ON report_schedules USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));
CREATE POLICY tenant_isolation ON report_runs USING ((tenant_id = fahwa_current_tenant())) WITH CHECK ((tenant_id = fahwa_current_tenant()));

GRANT SELECT, INSERT, DELETE, UPDATE ON TABLE reports, report_widgets, report_schedules, report_runs TO fahwa_app;
