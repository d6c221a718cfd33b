-- Dashboards sum `users` over ranges of transitions: with the count in the key's index they are
-- index-only scans (a year of the 10M-event bench tenant: the first-visit sum from 2.2 to 0.9 ms,
-- the whole rollup statement from 7.2 to 4.2 ms, psql).
ALTER TABLE active_transitions
  DROP CONSTRAINT active_transitions_pkey,
  ADD CONSTRAINT active_transitions_pkey PRIMARY KEY (tenant_id, day, prev_day) INCLUDE (users);
