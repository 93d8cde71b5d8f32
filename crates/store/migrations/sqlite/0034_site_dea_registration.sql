-- The registrant's DEA registration number and registered address per site, printed on the
-- controlled-substance books (dispensing log, inventory, Form 106 draft); empty until set.
ALTER TABLE sites ADD COLUMN dea_registration_number TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN dea_registered_address TEXT NOT NULL DEFAULT '';
