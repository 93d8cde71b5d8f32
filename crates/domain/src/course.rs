//! Treatment courses: a route, a phase and a series of planned sessions.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::error::{DomainError, Validator};
use crate::ids::{CourseId, PatientId, SiteId};
use crate::patient::Indication;

/// How the drug is given. Racemic ketamine by IV, IM, oral or sublingual route;
/// esketamine only as the nasal spray (clinical-reference §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    IvRacemic,
    ImRacemic,
    IntranasalEsketamine,
    OralRacemic,
    SublingualRacemic,
}

impl Route {
    pub const ALL: [Route; 5] =
        [Self::IvRacemic, Self::ImRacemic, Self::IntranasalEsketamine, Self::OralRacemic, Self::SublingualRacemic];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IvRacemic => "iv_racemic",
            Self::ImRacemic => "im_racemic",
            Self::IntranasalEsketamine => "intranasal_esketamine",
            Self::OralRacemic => "oral_racemic",
            Self::SublingualRacemic => "sublingual_racemic",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::IvRacemic => "IV ketamine",
            Self::ImRacemic => "IM ketamine",
            Self::IntranasalEsketamine => "Esketamine nasal spray",
            Self::OralRacemic => "Oral ketamine",
            Self::SublingualRacemic => "Sublingual ketamine",
        }
    }
    /// Routes dosed at home rather than in the chair.
    pub fn is_home(self) -> bool {
        matches!(self, Self::OralRacemic | Self::SublingualRacemic)
    }

    /// The substance a dose on this route is given from, out of the clinic's own stock (the
    /// controlled-substance ledger, CS-1): racemic ketamine vials for IV and IM, esketamine
    /// devices for the nasal spray. `None` for home routes, which are dispensed, not given.
    pub fn clinic_stock(self) -> Option<crate::ledger::Substance> {
        use crate::ledger::Substance;
        match self {
            Self::IvRacemic | Self::ImRacemic => Some(Substance::Ketamine),
            Self::IntranasalEsketamine => Some(Substance::Esketamine),
            Self::OralRacemic | Self::SublingualRacemic => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Induction,
    Maintenance,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Induction => "induction",
            Self::Maintenance => "maintenance",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Induction, Self::Maintenance].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CourseStatus {
    Active,
    Completed,
    Stopped,
}

impl CourseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Stopped => "stopped",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Completed, Self::Stopped].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Course {
    pub id: CourseId,
    pub patient_id: PatientId,
    pub site_id: SiteId,
    pub route: Route,
    pub phase: Phase,
    pub indication: Indication,
    pub planned_sessions: u32,
    pub start_date: Date,
    pub status: CourseStatus,
    /// Name of the protocol the course follows (the protocol library comes with dosing).
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCourse {
    pub route: Route,
    pub phase: Phase,
    /// Defaults to the patient's indication.
    #[serde(default)]
    pub indication: Option<Indication>,
    pub planned_sessions: u32,
    pub start_date: Date,
    #[serde(default)]
    pub protocol: Option<String>,
}

impl NewCourse {
    /// `today` is the clinic's date: the start must fall in the scheduling window.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check((1..=104).contains(&self.planned_sessions), "planned_sessions", "plan between 1 and 104 sessions");
        crate::plausible::check(
            &mut v,
            "start_date",
            crate::plausible::ranges().scheduled_date(self.start_date, today),
        );
        if let Some(p) = &self.protocol {
            v.check(!p.trim().is_empty() && p.len() <= 100, "protocol", "protocol name must be 1-100 characters");
        }
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Substance;

    #[test]
    fn chair_routes_are_given_from_the_matching_clinic_stock_and_home_routes_from_none() {
        assert_eq!(Route::IvRacemic.clinic_stock(), Some(Substance::Ketamine));
        assert_eq!(Route::ImRacemic.clinic_stock(), Some(Substance::Ketamine));
        assert_eq!(Route::IntranasalEsketamine.clinic_stock(), Some(Substance::Esketamine));
        for r in Route::ALL {
            assert_eq!(r.clinic_stock().is_none(), r.is_home(), "{}", r.as_str());
        }
    }
}
