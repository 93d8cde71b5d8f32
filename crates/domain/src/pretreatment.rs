//! Pre-treatment confirmations and caution decisions as records (clinical-reference §3.2,
//! §3.3): when a course is planned, the prescriber confirms each pre-treatment check the
//! route needs, and for each caution the eligibility assessment found writes down the
//! benefit expected, the risk weighed against it, and why treatment goes ahead. Each is
//! stored with who and when, shown in the chart and in the session's note.
//!
//! Pure: the store supplies the route's checks (`eligibility::pretreatment_checks`) and
//! the cautions of the latest assessment for the route.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::course::Route;
use crate::eligibility::{ContraindicationFinding, pretreatment_checks};
use crate::error::{DomainError, Validator};
use crate::ids::{CourseId, PatientId, RecordId};

/// Longest text accepted for a benefit, a risk or a reason.
const MAX_TEXT: usize = 1000;

/// The prescriber's decision on one caution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCautionDecision {
    /// The caution's code, as the eligibility assessment names it.
    pub code: String,
    /// The benefit expected from treatment for this patient.
    pub benefit: String,
    /// The risk this caution carries, and how it is managed.
    pub risk: String,
    /// Why treatment goes ahead despite it.
    pub reason: String,
}

/// What the prescriber confirms when planning a course.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPretreatment {
    /// Codes of the pre-treatment checks confirmed: every check the route needs.
    pub confirmed_checks: Vec<String>,
    /// One decision per caution of the latest assessment for the route.
    pub caution_decisions: Vec<NewCautionDecision>,
}

/// A confirmed pre-treatment check, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PretreatmentConfirmation {
    pub id: RecordId,
    pub code: String,
    /// The check's wording when it was confirmed.
    pub label: String,
    pub confirmed_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub confirmed_at: OffsetDateTime,
}

/// A caution decision, as stored: benefit weighed against risk, by whom, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CautionDecision {
    pub id: RecordId,
    pub code: String,
    /// The caution's wording when it was decided.
    pub label: String,
    pub benefit: String,
    pub risk: String,
    pub reason: String,
    pub decided_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
}

/// A course's pre-treatment record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CoursePretreatment {
    pub course_id: CourseId,
    pub patient_id: PatientId,
    pub route: Route,
    pub confirmations: Vec<PretreatmentConfirmation>,
    pub caution_decisions: Vec<CautionDecision>,
}

/// What is written once validated: (code, label) of each check, and each decision with its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPretreatment {
    pub checks: Vec<(String, String)>,
    pub decisions: Vec<(NewCautionDecision, String)>,
}

fn text_ok(s: &str) -> bool {
    let n = s.trim().chars().count();
    (1..=MAX_TEXT).contains(&n)
}

impl NewPretreatment {
    /// Checks the confirmation against the route's checks and the cautions found: every
    /// check confirmed (and none the route does not have), and every caution decided with
    /// its benefit, risk and reason (and no decision for a caution not found). Errors name
    /// the field: `confirmed_checks`, `caution.CODE.benefit|risk|reason`, `caution_decisions`.
    pub fn validate(
        &self,
        route: Route,
        cautions: &[ContraindicationFinding],
    ) -> Result<ValidPretreatment, DomainError> {
        let mut v = Validator::new();
        let needed = pretreatment_checks(route);
        let missing: Vec<&str> = needed
            .iter()
            .filter(|c| !self.confirmed_checks.iter().any(|x| x == &c.code))
            .map(|c| c.label.as_str())
            .collect();
        if !missing.is_empty() {
            v.push(
                "confirmed_checks",
                format!("confirm every pre-treatment check before planning; not yet confirmed: {}", missing.join("; ")),
            );
        }
        for x in &self.confirmed_checks {
            v.check(
                needed.iter().any(|c| &c.code == x),
                "confirmed_checks",
                format!("'{x}' is not a pre-treatment check for {}", route.label()),
            );
        }
        for c in cautions {
            let field = |part: &str| format!("caution.{}.{part}", c.code);
            match self.caution_decisions.iter().find(|d| d.code == c.code) {
                None => v.push(
                    &field("reason"),
                    format!(
                        "document the benefit–risk decision for the caution '{}': the benefit, the risk, and why treatment goes ahead",
                        c.label
                    ),
                ),
                Some(d) => {
                    v.check(text_ok(&d.benefit), &field("benefit"), "say what benefit is expected (1-1000 characters)");
                    v.check(text_ok(&d.risk), &field("risk"), "say what the risk is and how it is managed (1-1000 characters)");
                    v.check(text_ok(&d.reason), &field("reason"), "say why treatment goes ahead (1-1000 characters)");
                }
            }
        }
        for d in &self.caution_decisions {
            v.check(
                cautions.iter().any(|c| c.code == d.code),
                "caution_decisions",
                format!("'{}' is not a caution the latest assessment found for {}", d.code, route.label()),
            );
        }
        let dup_checks =
            (1..self.confirmed_checks.len()).any(|i| self.confirmed_checks[..i].contains(&self.confirmed_checks[i]));
        let dup_decisions = (1..self.caution_decisions.len())
            .any(|i| self.caution_decisions[..i].iter().any(|d| d.code == self.caution_decisions[i].code));
        v.check(!dup_checks, "confirmed_checks", "confirm each check once");
        v.check(!dup_decisions, "caution_decisions", "decide each caution once");
        v.finish()?;
        Ok(ValidPretreatment {
            checks: needed.iter().map(|c| (c.code.clone(), c.label.clone())).collect(),
            decisions: cautions
                .iter()
                .filter_map(|c| {
                    self.caution_decisions.iter().find(|d| d.code == c.code).map(|d| {
                        (
                            NewCautionDecision {
                                code: d.code.clone(),
                                benefit: d.benefit.trim().to_string(),
                                risk: d.risk.trim().to_string(),
                                reason: d.reason.trim().to_string(),
                            },
                            c.label.clone(),
                        )
                    })
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::ContraindicationLevel;

    fn caution(code: &str) -> ContraindicationFinding {
        ContraindicationFinding {
            code: code.into(),
            label: format!("Caution {code}"),
            level: ContraindicationLevel::Caution,
            source: "clinical-reference §3.2".into(),
            note: None,
            basis: Default::default(),
            evidence: None,
        }
    }

    fn all_checks(route: Route) -> Vec<String> {
        pretreatment_checks(route).iter().map(|c| c.code.clone()).collect()
    }

    fn decision(code: &str) -> NewCautionDecision {
        NewCautionDecision {
            code: code.into(),
            benefit: "Treatment-resistant depression, two failed trials".into(),
            risk: "Blood pressure rise; monitored every 15 minutes".into(),
            reason: "Benefit outweighs a managed risk".into(),
        }
    }

    #[test]
    fn every_check_and_every_caution_must_be_confirmed() {
        let route = Route::IvRacemic;
        assert!(!pretreatment_checks(route).is_empty(), "the route has checks to confirm");
        let mut checks = all_checks(route);
        checks.pop();
        let new = NewPretreatment { confirmed_checks: checks, caution_decisions: vec![] };
        let err = new.validate(route, &[caution("hypertension")]).unwrap_err();
        let fields: Vec<String> = match err {
            DomainError::Invalid(e) => e.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        };
        assert!(fields.contains(&"confirmed_checks".to_string()));
        assert!(fields.contains(&"caution.hypertension.reason".to_string()));
    }

    #[test]
    fn a_decision_needs_benefit_risk_and_reason() {
        let route = Route::IvRacemic;
        let mut d = decision("hypertension");
        d.risk = "  ".into();
        let new = NewPretreatment { confirmed_checks: all_checks(route), caution_decisions: vec![d] };
        let err = new.validate(route, &[caution("hypertension")]).unwrap_err();
        assert!(
            matches!(&err, DomainError::Invalid(e) if e.len() == 1 && e[0].field == "caution.hypertension.risk"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_checks_and_decisions_are_refused() {
        let route = Route::IvRacemic;
        let mut checks = all_checks(route);
        checks.push("not_a_check".into());
        let new = NewPretreatment { confirmed_checks: checks, caution_decisions: vec![decision("not_found")] };
        let err = new.validate(route, &[]).unwrap_err();
        assert!(matches!(&err, DomainError::Invalid(e) if e.len() == 2), "{err:?}");
    }

    #[test]
    fn a_complete_confirmation_keeps_the_wording() {
        let route = Route::IntranasalEsketamine;
        let new =
            NewPretreatment { confirmed_checks: all_checks(route), caution_decisions: vec![decision("hypertension")] };
        let ok = new.validate(route, &[caution("hypertension")]).unwrap();
        assert_eq!(ok.checks.len(), pretreatment_checks(route).len());
        assert_eq!(ok.decisions.len(), 1);
        assert_eq!(ok.decisions[0].1, "Caution hypertension");
    }
}
