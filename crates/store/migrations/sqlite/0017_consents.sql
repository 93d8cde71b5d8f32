-- Consent and REMS enrolment as records (issue 12). Keep in step with ../postgres/0017_consents.sql.
--
-- One row per signature on one version of one form (data/consents/forms.toml). The title and
-- text the patient was shown are copied in, so the version signed is kept even after the form
-- changes. The patient's part is never changed; the countersignature and a withdrawal are each
-- set once; nothing is deleted.
CREATE TABLE consents (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    form_key TEXT NOT NULL,
    form_version INTEGER NOT NULL,
    kind TEXT NOT NULL CONSTRAINT consents_kind CHECK (kind IN ('treatment', 'rems_enrolment', 'research_data_sharing')),
    route TEXT,
    form_title TEXT NOT NULL,
    form_text TEXT NOT NULL,
    patient_typed_name TEXT NOT NULL,
    patient_signature_svg TEXT NOT NULL,
    patient_signed_at INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    countersigned_by TEXT,
    countersigned_at INTEGER,
    rems_patient_id TEXT,
    rems_enrolled_on TEXT,
    withdrawn_at INTEGER,
    withdrawn_by TEXT,
    withdrawal_reason TEXT,
    CONSTRAINT consents_rems CHECK (kind <> 'rems_enrolment' OR (rems_patient_id IS NOT NULL AND rems_enrolled_on IS NOT NULL))
);
CREATE INDEX consents_patient ON consents(patient_id, form_key, id);

CREATE TRIGGER consents_no_delete BEFORE DELETE ON consents BEGIN SELECT RAISE(ABORT, 'signed consents are kept forever'); END;
CREATE TRIGGER consents_signed_part_fixed BEFORE UPDATE ON consents
WHEN NEW.patient_id IS NOT OLD.patient_id OR NEW.site_id IS NOT OLD.site_id OR NEW.form_key IS NOT OLD.form_key
  OR NEW.form_version IS NOT OLD.form_version OR NEW.kind IS NOT OLD.kind OR NEW.route IS NOT OLD.route
  OR NEW.form_title IS NOT OLD.form_title OR NEW.form_text IS NOT OLD.form_text
  OR NEW.patient_typed_name IS NOT OLD.patient_typed_name OR NEW.patient_signature_svg IS NOT OLD.patient_signature_svg
  OR NEW.patient_signed_at IS NOT OLD.patient_signed_at OR NEW.recorded_by IS NOT OLD.recorded_by
  OR NEW.rems_patient_id IS NOT OLD.rems_patient_id OR NEW.rems_enrolled_on IS NOT OLD.rems_enrolled_on
  OR (OLD.countersigned_at IS NOT NULL AND (NEW.countersigned_at IS NOT OLD.countersigned_at OR NEW.countersigned_by IS NOT OLD.countersigned_by))
  OR (OLD.withdrawn_at IS NOT NULL AND (NEW.withdrawn_at IS NOT OLD.withdrawn_at OR NEW.withdrawn_by IS NOT OLD.withdrawn_by OR NEW.withdrawal_reason IS NOT OLD.withdrawal_reason))
BEGIN SELECT RAISE(ABORT, 'a signed consent is not changed; only its countersignature and withdrawal are added, once'); END;
