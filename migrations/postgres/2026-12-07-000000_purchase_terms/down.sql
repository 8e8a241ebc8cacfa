ALTER TABLE purchases DROP COLUMN terms;
