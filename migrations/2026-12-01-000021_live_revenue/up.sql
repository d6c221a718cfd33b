-- Change capture also reads revenue changes: inserts, and updates (a corrected exchange rate
-- converts a day's changes again). A publication of its own, because publishing updates of
-- `events`, which has no replica identity, would make any update of it fail.
CREATE PUBLICATION fahwa_live_revenue FOR TABLE revenue_changes WITH (publish = 'insert, update');
