DROP PUBLICATION fahwa_live_revenue;
