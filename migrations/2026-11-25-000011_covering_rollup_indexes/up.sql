-- Dashboards sum `users` over ranges of transitions: with the count in the key's index they are
-- index-only scans (a year of the 10M-event bench tenant: the first-visit sum from 2.2 to 0.9 ms,
-- the whole rollup statement from 7.2 to 4.2 ms, psql; event counts of a year then took it from
-- 3.4 to 3.1 ms). The same for one tracked value's transitions.
ALTER TABLE active_transitions
  DROP CONSTRAINT active_transitions_pkey,
  ADD CONSTRAINT active_transitions_pkey PRIMARY KEY (tenant_id, day, prev_day) INCLUDE (users);
ALTER TABLE event_counts_daily
  DROP CONSTRAINT event_counts_daily_pkey,
  ADD CONSTRAINT event_counts_daily_pkey PRIMARY KEY (tenant_id, day, name) INCLUDE (events);
ALTER TABLE segment_transitions
  DROP CONSTRAINT segment_transitions_pkey,
  ADD CONSTRAINT segment_transitions_pkey PRIMARY KEY (tenant_id, seg, day, prev_day) INCLUDE (users);

-- Filtered and broken-down event counts read a range of days and test tracked values: from the
-- index alone, 3.4 ms became 1.9 ms for 90 days of `plan = pro` by country (EXPLAIN ANALYZE on
-- the bench tenant). The unique key stays for the upserts.
CREATE INDEX segment_counts_all_by_day ON segment_counts_all (tenant_id, day) INCLUDE (dims, events);
