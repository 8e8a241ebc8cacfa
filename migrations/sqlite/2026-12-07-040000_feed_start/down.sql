DROP TABLE feed_start;
