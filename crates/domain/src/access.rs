//! Roles and the permission table: what each role may do. Enforced once, in the
//! store, below every path (HTML, JSON API, exports, reports).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Administrator,
    Prescriber,
    Nurse,
    FrontDesk,
    Auditor,
    /// Exports the de-identified research data set; sees no chart.
    Researcher,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Self::Administrator, Self::Prescriber, Self::Nurse, Self::FrontDesk, Self::Auditor, Self::Researcher];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administrator => "administrator",
            Self::Prescriber => "prescriber",
            Self::Nurse => "nurse",
            Self::FrontDesk => "front_desk",
            Self::Auditor => "auditor",
            Self::Researcher => "researcher",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Administrator => "Administrator",
            Self::Prescriber => "Prescriber",
            Self::Nurse => "Nurse",
            Self::FrontDesk => "Front desk",
            Self::Auditor => "Auditor",
            Self::Researcher => "Researcher",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Everything a user can be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Find patients and see their demographics and the schedule.
    ViewDemographics,
    /// Register patients and edit demographics.
    EditDemographics,
    /// Open the clinical chart: scores, sessions, notes, adverse events, eligibility.
    ViewClinical,
    /// Record in the chair: lifecycle steps, vitals, observations, adverse events, alert acknowledgements, notes.
    RecordSession,
    /// Assess eligibility and plan courses and sessions.
    PlanTreatment,
    /// Enter questionnaire answers (staff entry or handing the kiosk to the patient).
    EnterQuestionnaire,
    /// Sign session notes.
    SignNotes,
    /// Record controlled-substance receipts, administrations, waste, counts and disposals.
    RecordLedger,
    /// Read the controlled-substance ledger and its reconciliation.
    ViewLedger,
    /// Manage users, roles and sites.
    ManageUsers,
    /// Read the audit trail.
    ViewAudit,
    /// Export the de-identified research data set (consenting patients only).
    ExportResearch,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Self::ViewDemographics,
        Self::EditDemographics,
        Self::ViewClinical,
        Self::RecordSession,
        Self::PlanTreatment,
        Self::EnterQuestionnaire,
        Self::SignNotes,
        Self::RecordLedger,
        Self::ViewLedger,
        Self::ManageUsers,
        Self::ViewAudit,
        Self::ExportResearch,
    ];
}

/// The permission table. Least privilege: administrators manage accounts but do not read
/// charts; the front desk registers and schedules but does not open clinical notes;
/// auditors read the audit trail and the ledger only; researchers export the de-identified
/// research data set and nothing else.
pub fn allowed(role: Role, p: Permission) -> bool {
    use Permission::*;
    use Role::*;
    match role {
        Administrator => matches!(p, ViewDemographics | EditDemographics | ManageUsers | ViewAudit | ViewLedger),
        Prescriber => !matches!(p, ManageUsers | ViewAudit | ExportResearch),
        Nurse => !matches!(p, ManageUsers | ViewAudit | PlanTreatment | ExportResearch),
        FrontDesk => matches!(p, ViewDemographics | EditDemographics | EnterQuestionnaire),
        Auditor => matches!(p, ViewAudit | ViewLedger | ViewDemographics),
        Researcher => matches!(p, ExportResearch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_desk_cannot_open_clinical_notes() {
        assert!(!allowed(Role::FrontDesk, Permission::ViewClinical));
        assert!(allowed(Role::FrontDesk, Permission::EditDemographics));
    }

    #[test]
    fn only_prescribers_plan_treatment() {
        let planners: Vec<Role> = Role::ALL.into_iter().filter(|r| allowed(*r, Permission::PlanTreatment)).collect();
        assert_eq!(planners, [Role::Prescriber]);
    }

    #[test]
    fn only_researchers_export_research_data_and_they_do_nothing_else() {
        for r in Role::ALL {
            assert_eq!(allowed(r, Permission::ExportResearch), r == Role::Researcher, "{r:?}");
        }
        let theirs: Vec<Permission> = Permission::ALL.into_iter().filter(|p| allowed(Role::Researcher, *p)).collect();
        assert_eq!(theirs, [Permission::ExportResearch]);
    }

    #[test]
    fn auditors_and_administrators_read_the_audit_trail_only_they() {
        for r in Role::ALL {
            assert_eq!(allowed(r, Permission::ViewAudit), matches!(r, Role::Auditor | Role::Administrator), "{r:?}");
        }
    }
}
