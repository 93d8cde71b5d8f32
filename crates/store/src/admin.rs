//! Running the clinic from the browser: changing staff accounts and sites after
//! they were created, and who last changed a setting. Each change is permission-checked,
//! validated before anything is written, and audited in the same transaction.

use std::collections::HashMap;

use keta_domain::DomainError;
use keta_domain::access::{Permission, Role};
use keta_domain::ids::SiteId;
use keta_domain::site::{Chair, NewSite};
use time::OffsetDateTime;

use crate::audit::{self, Action, Entry};
use crate::conn::Conn;
use crate::credentials::{self, check_password_policy};
use crate::error::{Result, StoreError};
use crate::time_codec::{from_ms, ms};
use crate::{Actor, Store, params};

/// What an administrator may change on an existing account.
#[derive(Debug, Clone)]
pub struct UserChange {
    pub display_name: String,
    pub role: Role,
    pub site_ids: Vec<SiteId>,
    pub can_break_glass: bool,
}

/// What an administrator may change on an existing site (its code stays: it is printed on records).
#[derive(Debug, Clone)]
pub struct SiteChange {
    pub name: String,
    pub address: String,
    pub time_zone: String,
    pub crisis_line: String,
}

/// Who last changed something, and when (from the audit trail).
#[derive(Debug, Clone, PartialEq)]
pub struct LastChange {
    pub by: String,
    pub at: OffsetDateTime,
}

/// The longest postal address kept for a site.
pub const ADDRESS_MAX_CHARS: usize = 300;

fn audit_user(c: &mut dyn Conn, actor: &Actor, now: OffsetDateTime, user_id: i64, fields: &[&str]) -> Result<()> {
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::PrivilegeChange,
            object_type: "user",
            object_id: Some(user_id.to_string()),
            patient_id: None,
            site_id: None,
            fields,
        },
    )
}

fn user_exists(c: &mut dyn Conn, user_id: i64) -> Result<String> {
    c.query_opt("SELECT username FROM users WHERE id = $1", params![user_id])?
        .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?
        .text("username")
}

fn end_sessions(c: &mut dyn Conn, user_id: i64, now: OffsetDateTime, reason: &str) -> Result<()> {
    c.execute(
        "UPDATE auth_sessions SET ended_at = $1, end_reason = $2 WHERE user_id = $3 AND ended_at IS NULL",
        params![ms(now), reason, user_id],
    )?;
    Ok(())
}

impl Store {
    /// Changes an account's name, role, sites and break-glass permission. An administrator
    /// cannot take the administrator role from their own account (nobody would be left to
    /// give it back). A role change ends the account's sessions, so it applies at once.
    pub async fn update_user(&self, actor: &Actor, user_id: i64, change: UserChange) -> Result<crate::accounts::User> {
        actor.require(Permission::ManageUsers)?;
        let mut v = keta_domain::error::Validator::new();
        let name = change.display_name.trim().to_string();
        v.check(
            !name.is_empty() && name.chars().count() <= 100,
            "display_name",
            "give the person's name as it should be printed (1-100 characters)",
        );
        v.check(
            actor.user_id != Some(user_id) || change.role == Role::Administrator,
            "role",
            "you cannot take the administrator role from your own account; ask another administrator",
        );
        v.finish()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            user_exists(c, user_id)?;
            for s in &change.site_ids {
                crate::sites::get_site(c, *s)
                    .map_err(|_| DomainError::field("site_ids", format!("site {s} does not exist")))?;
            }
            let old_role = c
                .query_opt("SELECT role FROM users WHERE id = $1", params![user_id])?
                .map(|r| r.text("role"))
                .transpose()?;
            c.execute(
                "UPDATE users SET display_name = $1, role = $2, can_break_glass = $3 WHERE id = $4",
                params![name.as_str(), change.role.as_str(), change.can_break_glass, user_id],
            )?;
            c.execute("DELETE FROM user_sites WHERE user_id = $1", params![user_id])?;
            for s in &change.site_ids {
                c.execute("INSERT INTO user_sites (user_id, site_id) VALUES ($1, $2)", params![user_id, s.0])?;
            }
            if old_role.as_deref() != Some(change.role.as_str()) && actor.user_id != Some(user_id) {
                end_sessions(c, user_id, now, "role_changed")?;
            }
            audit_user(c, &actor, now, user_id, &["display_name", "role", "site_ids", "can_break_glass"])?;
            crate::accounts::load_user(c, user_id)
        })
        .await
    }

    /// Sets a new password for an account (the person changes nothing else) and ends its
    /// sessions. The administrator must have re-entered their own password recently.
    pub async fn reset_user_password(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        user_id: i64,
        new_password: String,
    ) -> Result<()> {
        actor.require(Permission::ManageUsers)?;
        self.require_reauthentication("reset a password", reauthenticated_at)?;
        let username = self.read(move |c| user_exists(c, user_id)).await?;
        check_password_policy(&new_password, &username).map_err(|e| rename_field(e, "password", "new_password"))?;
        let hash = tokio::task::spawn_blocking(move || credentials::hash_password(&new_password))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            user_exists(c, user_id)?;
            c.execute(
                "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
                params![hash, ms(now), user_id],
            )?;
            end_sessions(c, user_id, now, "password_reset")?;
            audit_user(c, &actor, now, user_id, &["password"])
        })
        .await
    }

    /// Gives an account a new authenticator (TOTP) key, returned once to show the person,
    /// and ends its sessions. The administrator must have re-entered their password recently.
    pub async fn reset_user_totp(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        user_id: i64,
    ) -> Result<String> {
        actor.require(Permission::ManageUsers)?;
        self.require_reauthentication("reset an authenticator", reauthenticated_at)?;
        let secret = credentials::new_totp_secret();
        let now = self.now();
        let actor = actor.clone();
        let out = secret.clone();
        self.write(move |c| {
            user_exists(c, user_id)?;
            c.execute("UPDATE users SET totp_secret = $1 WHERE id = $2", params![secret, user_id])?;
            end_sessions(c, user_id, now, "totp_reset")?;
            audit_user(c, &actor, now, user_id, &["totp"])
        })
        .await?;
        Ok(out)
    }

    /// When each account last finished signing in (password and code).
    pub async fn last_sign_ins(&self, actor: &Actor) -> Result<HashMap<i64, OffsetDateTime>> {
        actor.require(Permission::ManageUsers)?;
        self.read(|c| {
            c.query(
                "SELECT user_id, max(created_at) AS last FROM auth_sessions WHERE mfa_passed = $1 GROUP BY user_id",
                params![true],
            )?
            .iter()
            .map(|r| Ok((r.i64("user_id")?, from_ms(r.i64("last")?)?)))
            .collect()
        })
        .await
    }

    /// A site's postal address (empty until set).
    pub async fn site_address(&self, actor: &Actor, site: SiteId) -> Result<String> {
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| {
            c.query_opt("SELECT address FROM sites WHERE id = $1", params![site.0])?
                .ok_or_else(|| StoreError::NotFound(format!("site {site}")))?
                .text("address")
        })
        .await
    }

    /// Changes a site's name, address, time zone and crisis line.
    pub async fn update_site(&self, actor: &Actor, site: SiteId, change: SiteChange) -> Result<()> {
        actor.require(Permission::ManageUsers)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let mut errors = match (NewSite {
            code: "X".into(),
            name: change.name.clone(),
            time_zone: change.time_zone.clone(),
            crisis_line: change.crisis_line.clone(),
        })
        .validate()
        {
            Err(DomainError::Invalid(e)) => e,
            _ => vec![],
        };
        let address = change.address.trim().to_string();
        errors.extend(address_error("address", &address));
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors).into());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            crate::sites::get_site(c, site)?;
            c.execute(
                "UPDATE sites SET name = $1, address = $2, time_zone = $3, crisis_line = $4 WHERE id = $5",
                params![
                    change.name.trim(),
                    address.as_str(),
                    change.time_zone.trim(),
                    change.crisis_line.trim(),
                    site.0
                ],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "site",
                    object_id: Some(site.to_string()),
                    patient_id: None,
                    site_id: Some(site),
                    fields: &["name", "address", "time_zone", "crisis_line"],
                },
            )
        })
        .await
    }

    /// Adds a chair to a site.
    pub async fn add_chair(&self, actor: &Actor, site: SiteId, name: String) -> Result<Chair> {
        actor.require(Permission::ManageUsers)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        keta_domain::site::validate_chair_names(std::slice::from_ref(&name))
            .map_err(|e| rename_field(e, "chairs[0]", "chair_name"))?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let existing = crate::sites::chairs_of(c, site)?;
            if existing.iter().any(|ch| ch.name == name.trim()) {
                return Err(DomainError::field(
                    "chair_name",
                    format!("'{}' is already a chair of this site", name.trim()),
                )
                .into());
            }
            let most = keta_domain::plausible::ranges().lists.chairs_max;
            if existing.len() >= most {
                return Err(DomainError::field("chair_name", format!("a site has at most {most} chairs")).into());
            }
            let id = c.insert(
                "INSERT INTO chairs (site_id, name) VALUES ($1, $2) RETURNING id",
                params![site.0, name.trim()],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Create,
                    object_type: "chair",
                    object_id: Some(id.to_string()),
                    patient_id: None,
                    site_id: Some(site),
                    fields: &["name"],
                },
            )?;
            Ok(Chair { id: keta_domain::ids::ChairId(id), site_id: site, name: name.trim().to_string() })
        })
        .await
    }

    /// Who last changed each of these (object type, object id, and optionally one field of it),
    /// from the audit trail, for the settings screens ("changed by … on …").
    pub async fn last_changes(
        &self,
        actor: &Actor,
        objects: Vec<(String, String, Option<String>)>,
    ) -> Result<Vec<Option<LastChange>>> {
        // Settings are shown to every role (nurses read the rules they work under); this
        // reveals only who changed a setting and when, never patient data.
        let _ = actor;
        self.read(move |c| {
            objects
                .iter()
                .map(|(t, id, field)| {
                    // `fields` is a JSON array of names; a field is matched with its quotes.
                    let like = field.as_ref().map_or_else(|| "%".to_string(), |f| format!("%\"{f}\"%"));
                    c.query_opt(
                        "SELECT actor, occurred_at FROM audit_log WHERE object_type = $1 AND object_id = $2
                         AND action IN ('update', 'create', 'privilege_change') AND fields LIKE $3
                         ORDER BY seq DESC LIMIT 1",
                        params![t.as_str(), id.as_str(), like],
                    )?
                    .map(|r| Ok(LastChange { by: r.text("actor")?, at: from_ms(r.i64("occurred_at")?)? }))
                    .transpose()
                })
                .collect()
        })
        .await
    }

    /// The clinic's home pre-dose settings, `None` until set (no default: clinical-reference
    /// gives no hours).
    pub async fn home_pre_dose_settings(&self) -> Result<Option<crate::home::HomePreDoseSettings>> {
        self.read(|c| crate::checkins::clinic_setting(c, crate::checkins::HOME_PRE_DOSE_SETTINGS)).await
    }
}

fn rename_field(e: DomainError, from: &str, to: &str) -> DomainError {
    match e {
        DomainError::Invalid(mut list) => {
            for f in &mut list {
                if f.field == from {
                    f.field = to.to_string();
                }
            }
            DomainError::Invalid(list)
        }
        other => other,
    }
}

/// A site's DEA registration as printed on its controlled-substance books: the registrant's
/// DEA number and the address the registration is for. Empty until an administrator sets them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeaRegistration {
    pub number: String,
    pub address: String,
}

impl Store {
    /// The site's DEA registration (any user who may see the site; it is printed on the books).
    pub async fn site_dea_registration(&self, actor: &Actor, site: SiteId) -> Result<DeaRegistration> {
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| {
            let r = c
                .query_opt(
                    "SELECT dea_registration_number, dea_registered_address FROM sites WHERE id = $1",
                    params![site.0],
                )?
                .ok_or_else(|| StoreError::NotFound(format!("site {site}")))?;
            Ok(DeaRegistration {
                number: r.text("dea_registration_number")?,
                address: r.text("dea_registered_address")?,
            })
        })
        .await
    }

    /// Sets the site's DEA registration number (checked like every DEA number Keta takes) and
    /// registered address. Both may be cleared by leaving them empty.
    pub async fn set_site_dea_registration(&self, actor: &Actor, site: SiteId, reg: DeaRegistration) -> Result<()> {
        actor.require(Permission::ManageUsers)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let number = reg.number.trim().to_uppercase();
        let address = reg.address.trim().to_string();
        let mut errors = Vec::new();
        if !number.is_empty() && !keta_domain::ledger::valid_dea_number(&number) {
            errors.push(keta_domain::FieldError::new(
                "dea_registration_number",
                "give the DEA number as two letters and seven digits, e.g. AB1234563 (its check digit must match)",
            ));
        }
        errors.extend(address_error("dea_registered_address", &address));
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors).into());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            crate::sites::get_site(c, site)?;
            c.execute(
                "UPDATE sites SET dea_registration_number = $1, dea_registered_address = $2 WHERE id = $3",
                params![number.as_str(), address.as_str(), site.0],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "site_dea_registration",
                    object_id: Some(site.to_string()),
                    patient_id: None,
                    site_id: Some(site),
                    fields: &["dea_registration_number", "dea_registered_address"],
                },
            )
        })
        .await
    }
}

/// The one check on a postal address typed by an administrator (a site's, or its DEA
/// registration's): `field` names the form field the error belongs to.
fn address_error(field: &str, address: &str) -> Option<keta_domain::FieldError> {
    (address.chars().count() > ADDRESS_MAX_CHARS || address.contains('\0'))
        .then(|| keta_domain::FieldError::new(field, format!("keep the address under {ADDRESS_MAX_CHARS} characters")))
}
