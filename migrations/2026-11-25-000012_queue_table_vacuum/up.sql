-- pending_segments and pending_users are queues: every row is inserted by a batch and deleted by
-- a flush within seconds. With the default scale factor autovacuum waits for a fifth of the
-- table's estimated size in dead rows, and the bench database was seen holding 613,524 dead rows
-- (80 MB, empty of live ones) an hour after its last vacuum. A fixed threshold keeps them small.
ALTER TABLE pending_segments SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
ALTER TABLE pending_users SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
