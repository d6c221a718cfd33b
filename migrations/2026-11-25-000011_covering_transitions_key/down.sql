ALTER TABLE active_transitions
  DROP CONSTRAINT active_transitions_pkey,
  ADD CONSTRAINT active_transitions_pkey PRIMARY KEY (tenant_id, day, prev_day);
