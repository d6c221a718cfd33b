-- The operations a deployment in allow-list mode runs (`FAHWA_TRUSTED_DOCUMENTS`): each a
-- standalone document (an operation and the fragments it uses), keyed by its SHA-256. Shared
-- by every tenant; written by `fahwa trust-documents`, read by the server.
CREATE TABLE trusted_documents (
    hash text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    body text NOT NULL CHECK (octet_length(body) <= 262144),
    created_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT ON TABLE trusted_documents TO fahwa_app;
