//! How urgent each alert raised between sessions is, and where the rule comes from
//! (`data/rules/between-sessions-alerts.toml`, a file the clinic's medical director can read and
//! change). The store decides *when* to raise them; this decides *how*.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertFiring, AlertSeverity};
use crate::error::{DomainError, Validator};
use crate::instruments::SourceRef;

/// One alert's severity and source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub severity: AlertSeverity,
    pub source: SourceRef,
}

impl AlertRule {
    /// The firing for this rule, under the code the care team sees.
    pub fn fire(&self, code: impl Into<String>, message: impl Into<String>) -> AlertFiring {
        AlertFiring {
            rule: code.into(),
            severity: self.severity,
            message: message.into(),
            source: self.source.to_string(),
        }
    }
}

/// Every between-session alert with a fixed rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BetweenSessionAlerts {
    pub relapse_watch: AlertRule,
    pub home_checkin_missed: AlertRule,
    pub home_pre_dose_refused: AlertRule,
    pub home_dose_log_unreconciled: AlertRule,
    pub home_dose_more_than_planned: AlertRule,
    /// Absent: a dose logged below the plan raises no alert.
    #[serde(default)]
    pub home_dose_less_than_planned: Option<AlertRule>,
    pub home_sitter_not_reached: AlertRule,
}

const EMBEDDED: &str = include_str!("../../../data/rules/between-sessions-alerts.toml");

impl BetweenSessionAlerts {
    /// Parses and checks a rules file: every alert names its source section.
    pub fn from_toml(text: &str) -> Result<Self, DomainError> {
        let r: Self = toml::from_str(text).map_err(|e| DomainError::field("between_sessions_alerts", e.to_string()))?;
        let mut v = Validator::new();
        for (f, rule) in [
            ("relapse_watch", &r.relapse_watch),
            ("home_checkin_missed", &r.home_checkin_missed),
            ("home_pre_dose_refused", &r.home_pre_dose_refused),
            ("home_dose_log_unreconciled", &r.home_dose_log_unreconciled),
            ("home_dose_more_than_planned", &r.home_dose_more_than_planned),
            ("home_sitter_not_reached", &r.home_sitter_not_reached),
        ]
        .into_iter()
        .chain(r.home_dose_less_than_planned.as_ref().map(|l| ("home_dose_less_than_planned", l)))
        {
            v.check(!rule.source.section.trim().is_empty(), &format!("{f}.source"), "name the source section");
        }
        v.finish()?;
        Ok(r)
    }

    /// The embedded rules.
    ///
    /// # Panics
    /// If the embedded file is invalid — a build defect caught by this module's tests.
    pub fn builtin() -> &'static Self {
        static R: OnceLock<BetweenSessionAlerts> = OnceLock::new();
        R.get_or_init(|| {
            Self::from_toml(EMBEDDED)
                .unwrap_or_else(|e| panic!("embedded data/rules/between-sessions-alerts.toml is invalid: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_rules_load_with_sources() {
        let r = BetweenSessionAlerts::builtin();
        let f = r.relapse_watch.fire("relapse_watch_phq9", "PHQ-9 back to 15");
        assert_eq!((f.rule.as_str(), f.severity), ("relapse_watch_phq9", AlertSeverity::Warning), "as shipped");
        assert_eq!(r.home_dose_more_than_planned.severity, AlertSeverity::Urgent, "as shipped");
        assert!(f.source.starts_with("clinical-reference.md §2.1"), "{}", f.source);
    }

    #[test]
    fn a_clinic_may_make_an_alert_urgent_but_not_drop_its_source() {
        let urgent = EMBEDDED.replacen(
            "[home_checkin_missed]\nseverity = \"warning\"",
            "[home_checkin_missed]\nseverity = \"urgent\"",
            1,
        );
        assert_ne!(urgent, EMBEDDED, "the edit applied");
        let r = BetweenSessionAlerts::from_toml(&urgent).unwrap();
        assert_eq!(r.home_checkin_missed.severity, AlertSeverity::Urgent);
        let unsourced =
            EMBEDDED.replacen("section = \"§4.3\", tags = [\"S13\"]", "section = \" \", tags = [\"S13\"]", 1);
        assert_ne!(unsourced, EMBEDDED, "the edit applied");
        let err = BetweenSessionAlerts::from_toml(&unsourced).unwrap_err().to_string();
        assert!(err.contains("home_checkin_missed.source"), "{err}");
        let bad = EMBEDDED.replacen("severity = \"warning\"", "severity = \"soon\"", 1);
        assert!(BetweenSessionAlerts::from_toml(&bad).is_err());
    }
}
