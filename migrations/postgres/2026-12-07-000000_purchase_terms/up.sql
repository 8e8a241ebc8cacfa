-- What a one-time purchase was sold with (its plan's features for the
-- units bought, and how long it grants), recorded when it is made, so
-- that later catalog edits change new purchases only. Purchases from
-- before take the catalog's terms when the service next starts.
ALTER TABLE purchases ADD COLUMN terms TEXT;
