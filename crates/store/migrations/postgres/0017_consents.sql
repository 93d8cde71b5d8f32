-- Consent and REMS enrolment as records (issue 12). Keep in step with ../sqlite/0017_consents.sql.
--
-- One row per signature on one version of one form (data/consents/forms.toml). The title and
-- text the patient was shown are copied in, so the version signed is kept even after the form
-- changes. The patient's part is never changed; the countersignature and a withdrawal are each
-- set once; nothing is deleted.
CREATE TABLE consents (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    form_key TEXT NOT NULL,
    form_version BIGINT NOT NULL,
    kind TEXT NOT NULL CONSTRAINT consents_kind CHECK (kind IN ('treatment', 'rems_enrolment', 'research_data_sharing')),
    route TEXT,
    form_title TEXT NOT NULL,
    form_text TEXT NOT NULL,
    patient_typed_name TEXT NOT NULL,
    patient_signature_svg TEXT NOT NULL,
    patient_signed_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    countersigned_by TEXT,
    countersigned_at BIGINT,
    rems_patient_id TEXT,
    rems_enrolled_on TEXT,
    withdrawn_at BIGINT,
    withdrawn_by TEXT,
    withdrawal_reason TEXT,
    CONSTRAINT consents_rems CHECK (kind <> 'rems_enrolment' OR (rems_patient_id IS NOT NULL AND rems_enrolled_on IS NOT NULL))
);
CREATE INDEX consents_patient ON consents(patient_id, form_key, id);

CREATE FUNCTION consents_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'signed consents are kept forever';
    END IF;
    IF NEW.patient_id IS DISTINCT FROM OLD.patient_id OR NEW.site_id IS DISTINCT FROM OLD.site_id OR NEW.form_key IS DISTINCT FROM OLD.form_key
       OR NEW.form_version IS DISTINCT FROM OLD.form_version OR NEW.kind IS DISTINCT FROM OLD.kind OR NEW.route IS DISTINCT FROM OLD.route
       OR NEW.form_title IS DISTINCT FROM OLD.form_title OR NEW.form_text IS DISTINCT FROM OLD.form_text
       OR NEW.patient_typed_name IS DISTINCT FROM OLD.patient_typed_name OR NEW.patient_signature_svg IS DISTINCT FROM OLD.patient_signature_svg
       OR NEW.patient_signed_at IS DISTINCT FROM OLD.patient_signed_at OR NEW.recorded_by IS DISTINCT FROM OLD.recorded_by
       OR NEW.rems_patient_id IS DISTINCT FROM OLD.rems_patient_id OR NEW.rems_enrolled_on IS DISTINCT FROM OLD.rems_enrolled_on
       OR (OLD.countersigned_at IS NOT NULL AND (NEW.countersigned_at IS DISTINCT FROM OLD.countersigned_at OR NEW.countersigned_by IS DISTINCT FROM OLD.countersigned_by))
       OR (OLD.withdrawn_at IS NOT NULL AND (NEW.withdrawn_at IS DISTINCT FROM OLD.withdrawn_at OR NEW.withdrawn_by IS DISTINCT FROM OLD.withdrawn_by OR NEW.withdrawal_reason IS DISTINCT FROM OLD.withdrawal_reason)) THEN
        RAISE EXCEPTION 'a signed consent is not changed; only its countersignature and withdrawal are added, once';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER consents_kept BEFORE UPDATE OR DELETE ON consents FOR EACH ROW EXECUTE FUNCTION consents_kept();
