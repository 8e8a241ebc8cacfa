DROP TABLE notify_progress;
DROP TABLE notify_endpoints;
