//! Sites (clinic locations) and their treatment chairs. Every patient, session and
//! staff member belongs to a site, and every query is scoped by site.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Validator};
use crate::ids::{ChairId, SiteId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Site {
    pub id: SiteId,
    pub code: String,
    pub name: String,
    /// IANA time zone name, e.g. `America/Chicago`; times are stored in UTC and shown in this zone.
    pub time_zone: String,
    /// The crisis line shown to patients of this site when a safety item is positive.
    pub crisis_line: String,
    /// Per-site overrides of clinical rule settings (`rule key -> value`), read by the rule engine.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    pub code: String,
    pub name: String,
    pub time_zone: String,
    pub crisis_line: String,
}

impl NewSite {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(is_code(&self.code), "code", "use 1-16 letters, digits or '-', e.g. 'AUS-1'");
        crate::plausible::check(&mut v, "name", crate::plausible::ranges().name(&self.name));
        v.check(is_iana_zone(&self.time_zone), "time_zone", "use an IANA time zone such as 'America/Chicago' or 'UTC'");
        v.check(
            !self.crisis_line.trim().is_empty(),
            "crisis_line",
            "give the crisis line patients of this site should call",
        );
        crate::plausible::check(&mut v, "crisis_line", crate::plausible::ranges().short_text(&self.crisis_line));
        v.finish()
    }
}

/// The chairs a new site starts with: each named (not blank, not too long), no name twice,
/// and no more than a clinic could have.
pub fn validate_chair_names(names: &[String]) -> Result<(), DomainError> {
    let ranges = crate::plausible::ranges();
    let mut v = Validator::new();
    let most = ranges.lists.chairs_max;
    if names.len() > most {
        v.push("chairs", format!("at most {most} chairs per site (there are {})", names.len()));
        return v.finish();
    }
    for (i, n) in names.iter().enumerate() {
        crate::plausible::check(&mut v, &format!("chairs[{i}]"), ranges.name(n));
        if names[..i].iter().any(|m| m.trim() == n.trim()) {
            v.push(&format!("chairs[{i}]"), format!("'{}' is already a chair of this site", n.trim()));
        }
    }
    v.finish()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chair {
    pub id: ChairId,
    pub site_id: SiteId,
    pub name: String,
}

fn is_code(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Shape check for an IANA zone name (`UTC`, `Area/Location[/Sub]`). The full tz database
/// check happens where zones are rendered.
pub fn is_iana_zone(s: &str) -> bool {
    if s == "UTC" {
        return true;
    }
    let parts: Vec<&str> = s.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c)))
        && parts[0].chars().next().is_some_and(|c| c.is_ascii_uppercase())
}
