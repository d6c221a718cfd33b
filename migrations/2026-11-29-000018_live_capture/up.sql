-- Change capture (src/live/capture) decodes inserted events through this publication; rows of
-- the monthly partitions are reported as rows of `events`.
CREATE PUBLICATION fahwa_live FOR TABLE events
  WITH (publish = 'insert', publish_via_partition_root = true);
