DROP INDEX segment_counts_all_by_day;
ALTER TABLE segment_transitions
  DROP CONSTRAINT segment_transitions_pkey,
  ADD CONSTRAINT segment_transitions_pkey PRIMARY KEY (tenant_id, seg, day, prev_day);
ALTER TABLE active_transitions
  DROP CONSTRAINT active_transitions_pkey,
  ADD CONSTRAINT active_transitions_pkey PRIMARY KEY (tenant_id, day, prev_day);
ALTER TABLE event_counts_daily
  DROP CONSTRAINT event_counts_daily_pkey,
  ADD CONSTRAINT event_counts_daily_pkey PRIMARY KEY (tenant_id, day, name);
