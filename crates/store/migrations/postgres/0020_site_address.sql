-- Issue 15: a site's postal address, edited on the administration screens.
ALTER TABLE sites ADD COLUMN address TEXT NOT NULL DEFAULT '';
-- "Changed by … on …" on the settings screens looks up the latest change of one object.
CREATE INDEX audit_log_object ON audit_log(object_type, object_id, seq);
