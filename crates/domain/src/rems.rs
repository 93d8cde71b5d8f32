//! The SPRAVATO REMS Patient Monitoring Form, filled from the session itself for
//! every esketamine session at an outpatient site: every field in product-reference §(b),
//! each taken from the record where the record has it (patient, enrolment, medication list,
//! dose, ledger lot, vitals, adverse events) and otherwise asked of the clinician
//! ([`RemsAnswers`]). [`RemsForm::missing`] lists what is still to be answered; the note is
//! not signed until it is empty. The form is due within 7 days of the session
//! (product-reference §(b), clinical-reference §4.1).

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

use crate::consent::ConsentRecord;
use crate::error::{DomainError, Validator};
use crate::medications::Medication;
use crate::patient::Patient;
use crate::records::VitalsRecord;
use crate::session::{AdverseEvent, TreatmentSession};
use crate::units::Milligrams;

/// "submit within 7 days" (product-reference §(b); clinical-reference §4.1).
pub const SUBMIT_WITHIN_DAYS: i64 = 7;

/// Minutes after administration of the form's second blood pressure ("40 min after
/// administration": product-reference §(b) item 8; clinical-reference §4.1 "~40 min").
pub const BP_AFTER_MINUTES: i64 = 40;

/// Yes or no, and if yes whether it resolved by the end of the session (item 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Experienced {
    pub experienced: bool,
    /// Needed when `experienced`.
    #[serde(default)]
    pub resolved: Option<bool>,
}

/// What the clinician answers: the form's fields the session record does not hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RemsAnswers {
    /// Item 1: the patient's middle initial; an empty string when the patient has none.
    #[schema(max_length = 1)]
    pub middle_initial: Option<String>,
    /// Item 3: the healthcare provider who did the monitoring.
    #[schema(max_length = 100)]
    pub monitor_first_name: Option<String>,
    #[schema(max_length = 100)]
    pub monitor_last_name: Option<String>,
    #[schema(max_length = 40)]
    pub monitor_phone: Option<String>,
    #[schema(max_length = 200)]
    pub monitor_email: Option<String>,
    /// Item 4: the healthcare setting's address (its name is the site's).
    #[schema(max_length = 200)]
    pub setting_address_1: Option<String>,
    /// Optional line.
    #[schema(max_length = 200)]
    pub setting_address_2: Option<String>,
    #[schema(max_length = 100)]
    pub setting_city: Option<String>,
    #[schema(max_length = 2)]
    pub setting_state: Option<String>,
    #[schema(max_length = 10)]
    pub setting_zip: Option<String>,
    /// Item 6: with no 2-hour minimum, minutes from the start of administration until the
    /// patient would have been ready to leave.
    #[schema(minimum = 0, maximum = 1440)]
    pub ready_to_leave_after_minutes: Option<i64>,
    /// Item 7: vital signs acceptable before administration, and before the session ended.
    pub vitals_acceptable_before: Option<bool>,
    pub vitals_acceptable_end: Option<bool>,
    /// Item 9.
    pub sedation: Option<Experienced>,
    pub dissociation: Option<Experienced>,
    pub respiratory_depression: Option<Experienced>,
}

impl RemsAnswers {
    /// Checks what was given (what was not given is listed by [`RemsForm::missing`]).
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        let text = |v: &mut Validator, field: &str, value: &Option<String>, max: usize| {
            if let Some(s) = value {
                v.check(
                    !s.trim().is_empty() && s.chars().count() <= max,
                    field,
                    format!("1-{max} characters, or leave it out"),
                );
            }
        };
        if let Some(m) = &self.middle_initial {
            v.check(
                m.is_empty() || (m.chars().count() == 1 && m.chars().all(char::is_alphabetic)),
                "middle_initial",
                "one letter, or an empty string when the patient has no middle name",
            );
        }
        text(&mut v, "monitor_first_name", &self.monitor_first_name, 100);
        text(&mut v, "monitor_last_name", &self.monitor_last_name, 100);
        text(&mut v, "monitor_phone", &self.monitor_phone, 40);
        if let Some(e) = &self.monitor_email {
            v.check(
                e.len() <= 200 && e.contains('@') && !e.contains(char::is_whitespace),
                "monitor_email",
                "an e-mail address such as name@clinic.example",
            );
        }
        text(&mut v, "setting_address_1", &self.setting_address_1, 200);
        text(&mut v, "setting_address_2", &self.setting_address_2, 200);
        text(&mut v, "setting_city", &self.setting_city, 100);
        if let Some(s) = &self.setting_state {
            v.check(
                s.len() == 2 && s.chars().all(|c| c.is_ascii_uppercase()),
                "setting_state",
                "the two-letter state code, e.g. TX",
            );
        }
        if let Some(z) = &self.setting_zip {
            let ok = (z.len() == 5 && z.chars().all(|c| c.is_ascii_digit()))
                || (z.len() == 10
                    && z.chars().enumerate().all(|(i, c)| if i == 5 { c == '-' } else { c.is_ascii_digit() }));
            v.check(ok, "setting_zip", "a ZIP code: 12345 or 12345-6789");
        }
        if let Some(m) = self.ready_to_leave_after_minutes {
            v.check(
                (0..=1440).contains(&m),
                "ready_to_leave_after_minutes",
                "minutes from the start of administration, 0-1440",
            );
        }
        for (field, e) in [
            ("sedation", self.sedation),
            ("dissociation", self.dissociation),
            ("respiratory_depression", self.respiratory_depression),
        ] {
            if let Some(e) = e {
                v.check(
                    e.experienced == e.resolved.is_some(),
                    field,
                    "say whether it resolved by the end of the session when it was experienced (and only then)",
                );
            }
        }
        v.finish()
    }
}

/// A blood pressure on the form.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FormBp {
    pub systolic_mmhg: f64,
    pub diastolic_mmhg: f64,
    /// Minutes from the start of administration (negative: before it).
    pub minutes_after_dose: i64,
}

/// A serious adverse event seen during the session (item 10).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FormAdverseEvent {
    pub description: String,
    pub outcome: String,
}

/// One field the record lacks and the clinician must answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MissingField {
    /// The `RemsAnswers` field (or the record to complete, e.g. `ledger`).
    pub field: String,
    pub question: String,
}

/// The form as it will be submitted: every field of product-reference §(b).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RemsForm {
    // 1. Patient
    pub first_name: String,
    pub middle_initial: Option<String>,
    pub last_name: String,
    pub date_of_birth: Date,
    pub sex: String,
    pub first_treatment: bool,
    pub enrolled: bool,
    pub rems_patient_id: Option<String>,
    pub enrolled_on: Option<Date>,
    // 2. Concomitant medication (from the medication list on the treatment date)
    pub benzodiazepines: bool,
    pub non_benzodiazepine_sedative_hypnotics: bool,
    pub psychostimulants: bool,
    pub maois: bool,
    pub opioids: bool,
    // 3. Monitoring healthcare provider
    pub monitor_first_name: Option<String>,
    pub monitor_last_name: Option<String>,
    pub monitor_phone: Option<String>,
    pub monitor_email: Option<String>,
    // 4. Healthcare setting
    pub setting_name: String,
    pub setting_address_1: Option<String>,
    pub setting_address_2: Option<String>,
    pub setting_city: Option<String>,
    pub setting_state: Option<String>,
    pub setting_zip: Option<String>,
    // 5. Treatment session
    pub treatment_date: Date,
    /// 56, 84, or another dose in mg.
    pub dose_mg: Option<Milligrams>,
    pub devices: Option<u32>,
    pub lot_numbers: Vec<String>,
    /// First device to the end of monitoring.
    pub total_treatment_minutes: Option<i64>,
    // 6.
    pub ready_to_leave_after_minutes: Option<i64>,
    // 7.
    pub vitals_acceptable_before: Option<bool>,
    pub vitals_acceptable_end: Option<bool>,
    // 8.
    pub bp_before: Option<FormBp>,
    pub bp_after_40_min: Option<FormBp>,
    pub bp_end: Option<FormBp>,
    // 9.
    pub sedation: Option<Experienced>,
    pub dissociation: Option<Experienced>,
    pub respiratory_depression: Option<Experienced>,
    // 10.
    pub serious_adverse_events: Vec<FormAdverseEvent>,
    /// What is still to be answered before the note can be signed.
    pub missing: Vec<MissingField>,
}

/// What the session record holds, gathered by the store.
pub struct SessionRecord<'a> {
    pub patient: &'a Patient,
    pub session: &'a TreatmentSession,
    /// The site's name and its local date of the session.
    pub setting_name: &'a str,
    pub treatment_date: Date,
    /// The patient's REMS enrolment record, if current.
    pub enrolment: Option<&'a ConsentRecord>,
    /// Whether an earlier esketamine session of the patient's had its dose started.
    pub earlier_esketamine_session: bool,
    pub medications: &'a [Medication],
    pub dose_mg: Option<Milligrams>,
    pub devices: Option<u32>,
    pub lot_numbers: Vec<String>,
    pub vitals: &'a [VitalsRecord],
    pub adverse_events: &'a [AdverseEvent],
}

fn bp_of(v: &VitalsRecord, dose: OffsetDateTime) -> Option<FormBp> {
    Some(FormBp {
        systolic_mmhg: v.vitals.systolic_mmhg?.0,
        diastolic_mmhg: v.vitals.diastolic_mmhg?.0,
        minutes_after_dose: (v.taken_at - dose).whole_minutes(),
    })
}

/// The form's three blood pressures: the last before administration, the one nearest
/// 40 minutes after it, and the last before the session ended.
fn pressures(
    vitals: &[VitalsRecord],
    dose: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
) -> [Option<FormBp>; 3] {
    let Some(dose) = dose else { return [None, None, None] };
    let with_bp: Vec<&VitalsRecord> =
        vitals.iter().filter(|v| v.vitals.systolic_mmhg.is_some() && v.vitals.diastolic_mmhg.is_some()).collect();
    let before = with_bp.iter().filter(|v| v.taken_at <= dose).max_by_key(|v| v.taken_at).and_then(|v| bp_of(v, dose));
    let after: Vec<&&VitalsRecord> =
        with_bp.iter().filter(|v| v.taken_at > dose && end.is_none_or(|e| v.taken_at <= e)).collect();
    let forty = after
        .iter()
        .min_by_key(|v| ((v.taken_at - dose).whole_minutes() - BP_AFTER_MINUTES).abs())
        .and_then(|v| bp_of(v, dose));
    let last = end.and_then(|_| after.iter().max_by_key(|v| v.taken_at).and_then(|v| bp_of(v, dose)));
    [before, forty, last]
}

fn has_class(meds: &[Medication], on: Date, code: &str) -> bool {
    meds.iter().filter(|m| m.is_current(on)).any(|m| m.classes.iter().any(|c| c.code == code))
}

impl RemsForm {
    /// Fills the form from the record and the clinician's answers.
    pub fn fill(r: &SessionRecord, a: &RemsAnswers) -> RemsForm {
        let s = r.session;
        let end = s.discharged_at.or(s.stopped_at);
        let [bp_before, bp_after_40_min, bp_end] = pressures(r.vitals, s.dose_started_at, end);
        let on = r.treatment_date;
        let mut form = RemsForm {
            first_name: r.patient.given_name.clone(),
            middle_initial: a.middle_initial.clone(),
            last_name: r.patient.family_name.clone(),
            date_of_birth: r.patient.date_of_birth,
            sex: r.patient.sex.as_str().to_string(),
            first_treatment: !r.earlier_esketamine_session,
            enrolled: r.enrolment.is_some(),
            rems_patient_id: r.enrolment.and_then(|e| e.rems_patient_id.clone()),
            enrolled_on: r.enrolment.and_then(|e| e.rems_enrolled_on),
            benzodiazepines: has_class(r.medications, on, "benzodiazepines"),
            non_benzodiazepine_sedative_hypnotics: has_class(r.medications, on, "other_cns_depressants"),
            psychostimulants: has_class(r.medications, on, "psychostimulants"),
            maois: has_class(r.medications, on, "maoi"),
            opioids: has_class(r.medications, on, "opioids"),
            monitor_first_name: a.monitor_first_name.clone(),
            monitor_last_name: a.monitor_last_name.clone(),
            monitor_phone: a.monitor_phone.clone(),
            monitor_email: a.monitor_email.clone(),
            setting_name: r.setting_name.to_string(),
            setting_address_1: a.setting_address_1.clone(),
            setting_address_2: a.setting_address_2.clone(),
            setting_city: a.setting_city.clone(),
            setting_state: a.setting_state.clone(),
            setting_zip: a.setting_zip.clone(),
            treatment_date: on,
            dose_mg: r.dose_mg,
            devices: r.devices,
            lot_numbers: r.lot_numbers.clone(),
            total_treatment_minutes: s.dose_started_at.zip(end).map(|(d, e)| (e - d).whole_minutes()),
            ready_to_leave_after_minutes: a.ready_to_leave_after_minutes,
            vitals_acceptable_before: a.vitals_acceptable_before,
            vitals_acceptable_end: a.vitals_acceptable_end,
            bp_before,
            bp_after_40_min,
            bp_end,
            sedation: a.sedation,
            dissociation: a.dissociation,
            respiratory_depression: a.respiratory_depression,
            serious_adverse_events: r
                .adverse_events
                .iter()
                .filter(|e| e.serious && e.session_id == Some(s.id))
                .map(|e| FormAdverseEvent { description: e.description.clone(), outcome: e.outcome.clone() })
                .collect(),
            missing: Vec::new(),
        };
        form.missing = form.missing_fields(s);
        form
    }

    fn missing_fields(&self, s: &TreatmentSession) -> Vec<MissingField> {
        let mut m = Vec::new();
        let mut ask = |ok: bool, field: &str, question: &str| {
            if !ok {
                m.push(MissingField { field: field.into(), question: question.into() });
            }
        };
        ask(self.middle_initial.is_some(), "middle_initial", "the patient's middle initial (or that they have none)");
        ask(
            self.enrolled,
            "rems_enrolment",
            "the patient's REMS enrolment (date and REMS patient id) on the consent page",
        );
        ask(
            self.monitor_first_name.is_some() && self.monitor_last_name.is_some(),
            "monitor_name",
            "the first and last name of the healthcare provider who monitored the patient",
        );
        ask(self.monitor_phone.is_some(), "monitor_phone", "the monitoring provider's phone");
        ask(self.monitor_email.is_some(), "monitor_email", "the monitoring provider's e-mail");
        ask(
            self.setting_address_1.is_some()
                && self.setting_city.is_some()
                && self.setting_state.is_some()
                && self.setting_zip.is_some(),
            "setting_address",
            "the healthcare setting's address (line 1, city, state, ZIP)",
        );
        ask(s.dose_started_at.is_some(), "dose", "the session has no administration: start the dose first");
        ask(self.dose_mg.is_some(), "dose_mg", "the dose given (record the devices given in the session)");
        ask(
            !self.lot_numbers.is_empty(),
            "ledger",
            "the lot number: record the administration in the controlled-substance ledger",
        );
        ask(
            self.total_treatment_minutes.is_some(),
            "total_treatment_minutes",
            "the end of monitoring: discharge the patient first",
        );
        ask(
            self.ready_to_leave_after_minutes.is_some(),
            "ready_to_leave_after_minutes",
            "with no 2-hour minimum, after how many minutes from the start of administration the patient would have been ready to leave",
        );
        ask(
            self.vitals_acceptable_before.is_some(),
            "vitals_acceptable_before",
            "were the vital signs acceptable before administration?",
        );
        ask(
            self.vitals_acceptable_end.is_some(),
            "vitals_acceptable_end",
            "were the vital signs acceptable before the session ended?",
        );
        ask(self.bp_before.is_some(), "bp_before", "a blood pressure taken before administration");
        ask(
            self.bp_after_40_min.is_some(),
            "bp_after_40_min",
            "a blood pressure taken about 40 minutes after administration",
        );
        ask(self.bp_end.is_some(), "bp_end", "a blood pressure taken before the session ended");
        ask(self.sedation.is_some(), "sedation", "did the patient experience sedation, and did it resolve?");
        ask(
            self.dissociation.is_some(),
            "dissociation",
            "did the patient experience dissociation, and did it resolve?",
        );
        ask(
            self.respiratory_depression.is_some(),
            "respiratory_depression",
            "did the patient experience respiratory depression, and did it resolve?",
        );
        m
    }
}

/// Where a form stands against the 7-day limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    Due,
    /// Within the site's "due soon" window (a setting with no default; without it nothing is "due soon").
    DueSoon,
    Overdue,
    Submitted,
}

/// The last day a form may be submitted: the treatment date plus 7 days.
pub fn due_on(treatment_date: Date) -> Date {
    treatment_date + Duration::days(SUBMIT_WITHIN_DAYS)
}

/// Where a form stands on `today` (the site's local date).
pub fn queue_status(
    treatment_date: Date,
    submitted: bool,
    today: Date,
    due_soon_within_days: Option<i64>,
) -> QueueStatus {
    let due = due_on(treatment_date);
    if submitted {
        QueueStatus::Submitted
    } else if today > due {
        QueueStatus::Overdue
    } else if due_soon_within_days.is_some_and(|d| (due - today).whole_days() <= d) {
        QueueStatus::DueSoon
    } else {
        QueueStatus::Due
    }
}

/// Marking a form submitted to the REMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkSubmitted {
    /// The confirmation number the REMS portal (or fax receipt) gave.
    #[schema(min_length = 1, max_length = 64)]
    pub confirmation_number: String,
    pub submitted_on: Date,
}

impl MarkSubmitted {
    pub fn validate(&self, treatment_date: Date, today: Date) -> Result<(), DomainError> {
        let mut v = Validator::new();
        let c = self.confirmation_number.trim();
        v.check(
            !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_/ ".contains(ch)),
            "confirmation_number",
            "the confirmation number as the REMS gave it (letters, digits, '-', '_', '/', up to 64)",
        );
        v.check(
            self.submitted_on >= treatment_date && self.submitted_on <= today,
            "submitted_on",
            format!("a date from the treatment date ({treatment_date}) to today ({today})"),
        );
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_queue_runs_against_seven_days() {
        let t = date!(2026 - 11 - 02);
        assert_eq!(due_on(t), date!(2026 - 11 - 09));
        assert_eq!(queue_status(t, false, date!(2026 - 11 - 03), None), QueueStatus::Due);
        assert_eq!(queue_status(t, false, date!(2026 - 11 - 09), None), QueueStatus::Due);
        assert_eq!(queue_status(t, false, date!(2026 - 11 - 10), None), QueueStatus::Overdue);
        assert_eq!(queue_status(t, false, date!(2026 - 11 - 07), Some(2)), QueueStatus::DueSoon);
        assert_eq!(queue_status(t, false, date!(2026 - 11 - 06), Some(2)), QueueStatus::Due);
        assert_eq!(queue_status(t, true, date!(2026 - 12 - 30), Some(2)), QueueStatus::Submitted);
    }

    #[test]
    fn answers_and_submission_are_checked() {
        let bad = RemsAnswers {
            middle_initial: Some("AB".into()),
            setting_state: Some("Texas".into()),
            setting_zip: Some("1234".into()),
            ready_to_leave_after_minutes: Some(-5),
            sedation: Some(Experienced { experienced: true, resolved: None }),
            ..Default::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        for f in ["middle_initial", "setting_state", "setting_zip", "ready_to_leave_after_minutes", "sedation"] {
            assert!(e.contains(f), "{f}: {e}");
        }
        assert!(RemsAnswers { middle_initial: Some(String::new()), ..Default::default() }.validate().is_ok());
        let t = date!(2026 - 11 - 02);
        let ok = MarkSubmitted { confirmation_number: "SPR-12345".into(), submitted_on: t };
        assert!(ok.validate(t, t).is_ok());
        assert!(MarkSubmitted { submitted_on: date!(2026 - 11 - 01), ..ok.clone() }.validate(t, t).is_err());
        assert!(MarkSubmitted { confirmation_number: " ".into(), ..ok }.validate(t, t).is_err());
    }
}
