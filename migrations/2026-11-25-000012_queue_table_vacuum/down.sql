ALTER TABLE pending_users RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
ALTER TABLE pending_segments RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
