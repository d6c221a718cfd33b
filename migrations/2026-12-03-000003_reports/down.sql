DROP TABLE report_runs, report_schedules, report_widgets, reports;
