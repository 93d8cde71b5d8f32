//! Staff on duty: who works at a site on a day (nurses and prescribers), shown in the
//! calendar's week and day views. The administrator or the front desk sets a day's rota from
//! the calendar; setting it replaces that day's list, checks every name (an enabled nurse or
//! prescriber who works at the site) and writes its audit entry in the same transaction.
//!
//! Not the escalation setting: the prescriber alerts are escalated to is the site's on-duty
//! setting (`Store::set_on_duty`), which the calendar shows beside the rota.

use time::Date;

use keta_domain::DomainError;
use keta_domain::access::{Permission, Role};
use keta_domain::error::Validator;
use keta_domain::ids::SiteId;

use crate::audit::{self, Action, Entry};
use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::time_codec::ms;
use crate::{Actor, Store, params};

/// The roles a rota lists.
pub const ROTA_ROLES: [Role; 2] = [Role::Prescriber, Role::Nurse];

/// The most people one day's rota may list.
const MAX_PER_DAY: usize = 50;

/// One person on duty at a site on a day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OnDutyStaff {
    /// The site's local date.
    pub day: Date,
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// Someone who may be put on a site's rota: an enabled nurse or prescriber working there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotaCandidate {
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

fn day_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn parse_day(s: &str) -> Result<Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &f).map_err(|_| StoreError::Corrupt(format!("rota day `{s}`")))
}

fn role_of(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| StoreError::Corrupt(format!("role `{s}`")))
}

/// The rota of `site` for the local dates `from` up to (not including) `until`, by day,
/// prescribers first, then by name.
pub(crate) fn rota_between(c: &mut dyn Conn, site: SiteId, from: Date, until: Date) -> Result<Vec<OnDutyStaff>> {
    let mut out = c
        .query(
            "SELECT r.day, u.username, u.display_name, u.role FROM duty_rota r JOIN users u ON u.id = r.user_id
             WHERE r.site_id = $1 AND r.day >= $2 AND r.day < $3 ORDER BY r.day, u.display_name, u.username",
            params![site.0, day_text(from), day_text(until)],
        )?
        .iter()
        .map(|r| {
            Ok(OnDutyStaff {
                day: parse_day(&r.text("day")?)?,
                username: r.text("username")?,
                display_name: r.text("display_name")?,
                role: role_of(&r.text("role")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|s| (s.day, s.role != Role::Prescriber));
    Ok(out)
}

fn candidates(c: &mut dyn Conn, site: SiteId) -> Result<Vec<(i64, RotaCandidate)>> {
    c.query(
        "SELECT u.id, u.username, u.display_name, u.role FROM users u JOIN user_sites s ON s.user_id = u.id
         WHERE s.site_id = $1 AND u.disabled = $2 AND u.role IN ('prescriber', 'nurse')
         ORDER BY u.role DESC, u.display_name, u.username",
        params![site.0, false],
    )?
    .iter()
    .map(|r| {
        Ok((
            r.i64("id")?,
            RotaCandidate {
                username: r.text("username")?,
                display_name: r.text("display_name")?,
                role: role_of(&r.text("role")?)?,
            },
        ))
    })
    .collect()
}

/// Setting the rota is the administrator's or the front desk's work (nurses and prescribers
/// read it).
fn require_rota_setter(actor: &Actor) -> Result<()> {
    match actor.role {
        None | Some(Role::Administrator | Role::FrontDesk) => Ok(()),
        Some(_) => Err(StoreError::Forbidden("the rota is set by the administrator or the front desk".into())),
    }
}

impl Store {
    /// Who is on duty at `site` on the `days` local dates from `from`.
    pub async fn duty_rota(&self, actor: &Actor, site: SiteId, from: Date, days: u32) -> Result<Vec<OnDutyStaff>> {
        actor.require(Permission::ViewDemographics)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let until = from + time::Duration::days(i64::from(days.min(crate::calendar::MAX_CALENDAR_DAYS)));
        self.read(move |c| rota_between(c, site, from, until)).await
    }

    /// The enabled nurses and prescribers who work at `site`: who may be put on its rota.
    pub async fn rota_candidates(&self, actor: &Actor, site: SiteId) -> Result<Vec<RotaCandidate>> {
        actor.require(Permission::ViewDemographics)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| Ok(candidates(c, site)?.into_iter().map(|(_, c)| c).collect())).await
    }

    /// Sets who is on duty at `site` on `day` (replacing that day's list; an empty list clears
    /// it). Every name must be an enabled nurse or prescriber working at the site; a bad one is
    /// refused by name and nothing changes.
    pub async fn set_duty_rota(
        &self,
        actor: &Actor,
        site: SiteId,
        day: Date,
        usernames: Vec<String>,
    ) -> Result<Vec<OnDutyStaff>> {
        require_rota_setter(actor)?;
        let mut names: Vec<String> = usernames.iter().map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect();
        names.sort();
        names.dedup();
        if names.len() > MAX_PER_DAY {
            return Err(DomainError::field("staff", format!("list at most {MAX_PER_DAY} people for one day")).into());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            crate::sites::get_site(c, site)?;
            if !actor.scope.allows(site) {
                return Err(StoreError::NotFound(format!("site {site}")));
            }
            let allowed = candidates(c, site)?;
            let mut v = Validator::new();
            let mut ids = Vec::new();
            for n in &names {
                match allowed.iter().find(|(_, c)| &c.username == n) {
                    Some((id, _)) => ids.push(*id),
                    None => v.check(
                        false,
                        "staff",
                        format!("`{n}` is not an enabled nurse or prescriber working at this site"),
                    ),
                }
            }
            v.finish()?;
            let d = day_text(day);
            c.execute("DELETE FROM duty_rota WHERE site_id = $1 AND day = $2", params![site.0, d.as_str()])?;
            for id in &ids {
                c.execute(
                    "INSERT INTO duty_rota (site_id, day, user_id, set_by, set_at) VALUES ($1, $2, $3, $4, $5)",
                    params![site.0, d.as_str(), *id, actor.name.as_str(), ms(now)],
                )?;
            }
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "duty_rota",
                    object_id: Some(format!("{site}/{d}")),
                    patient_id: None,
                    site_id: Some(site),
                    fields: &["staff"],
                },
            )?;
            rota_between(c, site, day, day + time::Duration::days(1))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn days_are_stored_as_sortable_local_dates() {
        assert_eq!(day_text(date!(2026 - 03 - 07)), "2026-03-07");
        assert_eq!(parse_day("2026-03-07").unwrap(), date!(2026 - 03 - 07));
        assert!(parse_day("07/03/2026").is_err());
    }
}
