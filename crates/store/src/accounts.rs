//! Accounts, sign-in sessions, re-authentication and break-glass access
//! (security-reference §2.1). Tokens are random; only their hashes are stored.

use keta_domain::DomainError;
use keta_domain::access::{Permission, Role};
use keta_domain::ids::{PatientId, SiteId};
use time::{Duration, OffsetDateTime};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::credentials::{self, check_password_policy, token_hash};
use crate::error::{Result, StoreError};
use crate::time_codec::{from_ms, ms, opt_from_ms};
use crate::{Actor, SiteScope, Store, params};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub site_ids: Vec<SiteId>,
    pub can_break_glass: bool,
    pub disabled: bool,
    pub totp_enrolled: bool,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
    pub site_ids: Vec<SiteId>,
    pub can_break_glass: bool,
    /// A TOTP secret to enrol (base32). `None` generates one.
    pub totp_secret: Option<String>,
}

/// Idle and absolute session limits (AC-4), clamped to hard maxima.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
}

impl SessionPolicy {
    pub const MAX_IDLE: Duration = Duration::minutes(30);
    pub const MAX_ABSOLUTE: Duration = Duration::hours(12);

    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self {
            idle: idle.clamp(Duration::minutes(1), Self::MAX_IDLE),
            absolute: absolute.clamp(Duration::minutes(5), Self::MAX_ABSOLUTE),
        }
    }
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle: Duration::minutes(15), absolute: Duration::hours(12) }
    }
}

/// A sign-in session as the web layer sees it.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub csrf_token: String,
    pub mfa_passed: bool,
    pub reauthenticated_at: Option<OffsetDateTime>,
    pub token_hash: String,
    pub actor: Actor,
    /// The patient whose kiosk this session is showing, if it is in kiosk mode: then only
    /// that patient's kiosk pages are served until the staff member re-enters their password.
    pub kiosk_patient: Option<PatientId>,
}

/// Why a request's session is not usable. All map to "sign in again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Unknown,
    Idle,
    Absolute,
    LoggedOut,
    Disabled,
}

const USER_COLS: &str = "id, username, display_name, role, can_break_glass, disabled, totp_secret";

fn user_from(c: &mut dyn Conn, r: &Row) -> Result<User> {
    let id = r.i64("id")?;
    let site_ids = c
        .query("SELECT site_id FROM user_sites WHERE user_id = $1 ORDER BY site_id", params![id])?
        .iter()
        .map(|r| r.i64("site_id").map(SiteId))
        .collect::<Result<Vec<_>>>()?;
    Ok(User {
        id,
        username: r.text("username")?,
        display_name: r.text("display_name")?,
        role: Role::parse(&r.text("role")?).ok_or_else(|| StoreError::Corrupt("user role".into()))?,
        can_break_glass: r.bool("can_break_glass")?,
        disabled: r.bool("disabled")?,
        totp_enrolled: r.opt_text("totp_secret")?.is_some(),
        site_ids,
    })
}

pub(crate) fn load_user(c: &mut dyn Conn, id: i64) -> Result<User> {
    let r = c
        .query_opt(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"), params![id])?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
    user_from(c, &r)
}

/// The actor for a signed-in user, including unexpired break-glass grants.
fn actor_for(c: &mut dyn Conn, u: &User, now: OffsetDateTime) -> Result<Actor> {
    let grants = c
        .query(
            "SELECT patient_id FROM break_glass_grants WHERE user_id = $1 AND expires_at > $2",
            params![u.id, ms(now)],
        )?
        .iter()
        .map(|r| r.i64("patient_id").map(PatientId))
        .collect::<Result<Vec<_>>>()?;
    Ok(Actor {
        name: u.username.clone(),
        scope: SiteScope::Sites(u.site_ids.clone()),
        role: Some(u.role),
        user_id: Some(u.id),
        break_glass: grants,
    })
}

fn valid_username(s: &str) -> bool {
    (3..=40).contains(&s.len()) && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c))
}

fn audit_auth(
    c: &mut dyn Conn,
    who: &str,
    user_id: Option<i64>,
    at: OffsetDateTime,
    action: Action,
    object_id: Option<String>,
) -> Result<()> {
    let actor = Actor { name: who.to_string(), scope: SiteScope::All, role: None, user_id, break_glass: vec![] };
    audit::record(
        c,
        &actor,
        at,
        Entry { action, object_type: "auth_session", object_id, patient_id: None, site_id: None, fields: &[] },
    )
}

impl Store {
    pub async fn user_count(&self) -> Result<i64> {
        self.read(|c| c.query_opt("SELECT count(*) AS n FROM users", &[])?.map_or(Ok(0), |r| r.i64("n"))).await
    }

    /// Creates an account. The very first account (first-run setup) must be an
    /// administrator and may be created by Keta itself; after that only
    /// administrators create accounts. Returns the user and their TOTP secret.
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<(User, String)> {
        let first_run = self.user_count().await? == 0;
        if !first_run || actor.role.is_some() {
            actor.require(Permission::ManageUsers)?;
        }
        if first_run && new.role != Role::Administrator {
            return Err(DomainError::field("role", "the first account must be an administrator").into());
        }
        let username = new.username.trim().to_lowercase();
        if !valid_username(&username) {
            return Err(DomainError::field("username", "use 3-40 lower-case letters, digits, '.', '-' or '_'").into());
        }
        if new.display_name.trim().is_empty() || new.display_name.len() > 100 {
            return Err(DomainError::field(
                "display_name",
                "give the person's name as it should be printed (1-100 characters)",
            )
            .into());
        }
        check_password_policy(&new.password, &username)?;
        let secret = match new.totp_secret {
            Some(s) if credentials::base32_decode(&s).is_some_and(|b| b.len() >= 10) => s,
            Some(_) => {
                return Err(DomainError::field(
                    "totp_secret",
                    "a TOTP secret is base32 text of at least 16 characters",
                )
                .into());
            }
            None => credentials::new_totp_secret(),
        };
        let password = new.password.clone();
        let hash = tokio::task::spawn_blocking(move || credentials::hash_password(&password))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = self.now();
        let actor = actor.clone();
        let secret_out = secret.clone();
        let user = self
            .write(move |c| {
                if !first_run && c.query_opt("SELECT count(*) AS n FROM users", &[])?.map_or(Ok(0), |r| r.i64("n"))? == 0 {
                    return Err(StoreError::Conflict("first-run setup has not been done".into()));
                }
                for s in &new.site_ids {
                    crate::sites::get_site(c, *s).map_err(|_| DomainError::field("site_ids", format!("site {s} does not exist")))?;
                }
                let id = c.insert(
                    "INSERT INTO users (username, display_name, role, password_hash, totp_secret, can_break_glass, disabled, created_at, password_changed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    params![username.as_str(), new.display_name.trim(), new.role.as_str(), hash, secret, new.can_break_glass, false, ms(now), ms(now)],
                )?;
                for s in &new.site_ids {
                    c.execute("INSERT INTO user_sites (user_id, site_id) VALUES ($1, $2)", params![id, s.0])?;
                }
                audit::record(c, &actor, now, Entry {
                    action: Action::PrivilegeChange, object_type: "user", object_id: Some(id.to_string()), patient_id: None, site_id: None,
                    fields: &["username", "display_name", "role", "site_ids", "can_break_glass", "totp"],
                })?;
                load_user(c, id)
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) if m.contains("conflicts") => StoreError::Conflict("that user name is taken".into()),
                other => other,
            })?;
        Ok((user, secret_out))
    }

    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<User>> {
        actor.require(Permission::ManageUsers)?;
        self.read(|c| {
            let rows = c.query(&format!("SELECT {USER_COLS} FROM users ORDER BY username"), &[])?;
            rows.iter().map(|r| user_from(c, r)).collect()
        })
        .await
    }

    /// Disables or re-enables an account; disabling ends its live sessions at once.
    pub async fn set_user_disabled(&self, actor: &Actor, user_id: i64, disabled: bool) -> Result<User> {
        actor.require(Permission::ManageUsers)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            load_user(c, user_id)?;
            c.execute("UPDATE users SET disabled = $1 WHERE id = $2", params![disabled, user_id])?;
            if disabled {
                c.execute("UPDATE auth_sessions SET ended_at = $1, end_reason = 'disabled' WHERE user_id = $2 AND ended_at IS NULL", params![ms(now), user_id])?;
            }
            audit::record(c, &actor, now, Entry {
                action: Action::PrivilegeChange, object_type: "user", object_id: Some(user_id.to_string()), patient_id: None, site_id: None, fields: &["disabled"],
            })?;
            load_user(c, user_id)
        })
        .await
    }

    /// Checks a user name and password. On success starts a session that still needs
    /// the second factor; returns its token (for the cookie). Every outcome is audited;
    /// failures say nothing about which part was wrong.
    pub async fn begin_sign_in(&self, username: &str, password: &str) -> Result<Option<String>> {
        let username = username.trim().to_lowercase();
        let found = {
            let u = username.clone();
            self.read(move |c| {
                c.query_opt("SELECT id, password_hash, disabled FROM users WHERE username = $1", params![u.as_str()])?
                    .map(|r| Ok::<_, StoreError>((r.i64("id")?, r.text("password_hash")?, r.bool("disabled")?)))
                    .transpose()
            })
            .await?
        };
        let (hash, user) = match &found {
            Some((id, h, disabled)) => (h.clone(), Some((*id, *disabled))),
            None => (credentials::dummy_hash().to_string(), None),
        };
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || credentials::verify_password(&pw, &hash))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = self.now();
        match user {
            Some((id, false)) if ok => {
                let token = credentials::new_token();
                let th = token_hash(&token);
                let csrf = credentials::new_token();
                self.write(move |c| {
                    c.execute(
                        "INSERT INTO auth_sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, reauthenticated_at, mfa_passed) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        params![th.as_str(), id, csrf, ms(now), ms(now), ms(now), false],
                    )?;
                    audit_auth(c, &username, Some(id), now, Action::LoginOk, Some(th[..16].to_string()))
                })
                .await?;
                Ok(Some(token))
            }
            _ => {
                let uid = user.map(|u| u.0);
                self.write(move |c| audit_auth(c, &username, uid, now, Action::LoginFail, None)).await?;
                Ok(None)
            }
        }
    }

    /// Completes sign-in with a TOTP code. A code is accepted once (AC-10: reuse refused).
    pub async fn complete_second_factor(&self, token: &str, code: &str) -> Result<bool> {
        let th = token_hash(token);
        let now = self.now();
        let code = code.to_string();
        self.write(move |c| {
            let Some(r) = c.query_opt(
                "SELECT s.user_id, u.totp_secret, u.totp_last_step, u.username FROM auth_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.ended_at IS NULL AND u.disabled = $2",
                params![th.as_str(), false],
            )?
            else {
                return Ok(false);
            };
            let (uid, secret, last, username) = (r.i64("user_id")?, r.opt_text("totp_secret")?, r.opt_i64("totp_last_step")?, r.text("username")?);
            let step = secret.as_deref().and_then(|s| credentials::totp_match(s, &code, now.unix_timestamp()));
            // Guarded: of two sign-ins racing with the same code, only one moves the step on.
            let accepted = match step {
                Some(step) if last.is_none_or(|l| step > l) => {
                    c.execute(
                        "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
                        params![step, uid],
                    )? == 1
                }
                _ => false,
            };
            if !accepted {
                audit_auth(c, &username, Some(uid), now, Action::LoginFail, Some("second factor".into()))?;
                return Ok(false);
            }
            // Rotate the token's privileges: the pre-MFA state cannot be replayed as signed in.
            c.execute("UPDATE auth_sessions SET mfa_passed = $1, last_seen_at = $2 WHERE token_hash = $3", params![true, ms(now), th.as_str()])?;
            Ok(true)
        })
        .await
    }

    /// Resolves a session token to the signed-in user, enforcing idle and absolute limits.
    /// An expired session is ended and its time-out audited.
    pub async fn resolve_session(
        &self,
        token: &str,
        policy: SessionPolicy,
    ) -> Result<std::result::Result<SignedIn, SessionEnd>> {
        let th = token_hash(token);
        let now = self.now();
        let row = {
            let th = th.clone();
            self.read(move |c| {
                let Some(r) = c.query_opt(
                    "SELECT s.user_id, s.csrf_token, s.created_at, s.last_seen_at, s.reauthenticated_at, s.mfa_passed, s.ended_at, u.disabled, s.kiosk_patient_id
                     FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
                    params![th.as_str()],
                )?
                else {
                    return Ok(None);
                };
                let user = load_user(c, r.i64("user_id")?)?;
                let actor = actor_for(c, &user, now)?;
                Ok(Some((user, actor, r.text("csrf_token")?, from_ms(r.i64("created_at")?)?, from_ms(r.i64("last_seen_at")?)?, opt_from_ms(r.opt_i64("reauthenticated_at")?)?, r.bool("mfa_passed")?, r.opt_i64("ended_at")?, r.bool("disabled")?, r.opt_i64("kiosk_patient_id")?)))
            })
            .await?
        };
        let Some((user, actor, csrf, created, last_seen, reauth, mfa, ended, disabled, kiosk)) = row else {
            return Ok(Err(SessionEnd::Unknown));
        };
        if ended.is_some() {
            return Ok(Err(SessionEnd::LoggedOut));
        }
        let end = if disabled {
            Some((SessionEnd::Disabled, "disabled"))
        } else if now - created >= policy.absolute {
            Some((SessionEnd::Absolute, "absolute_timeout"))
        } else if now - last_seen >= policy.idle {
            Some((SessionEnd::Idle, "idle_timeout"))
        } else {
            None
        };
        if let Some((why, reason)) = end {
            let name = user.username.clone();
            let uid = user.id;
            self.write(move |c| {
                // Two requests noticing the time-out at once end the session once.
                if c.execute("UPDATE auth_sessions SET ended_at = $1, end_reason = $2 WHERE token_hash = $3 AND ended_at IS NULL", params![ms(now), reason, th.as_str()])? != 1 {
                    return Ok(());
                }
                audit_auth(c, &name, Some(uid), now, Action::Timeout, Some(reason.to_string()))
            })
            .await?;
            return Ok(Err(why));
        }
        // Touch at most once a minute: the idle clock needs minute precision, not a write per request.
        if now - last_seen >= Duration::minutes(1) {
            let th2 = th.clone();
            let touched = self
                .write(move |c| {
                    c.execute(
                        "UPDATE auth_sessions SET last_seen_at = $1 WHERE token_hash = $2",
                        params![ms(now), th2.as_str()],
                    )
                    .map(|_| ())
                })
                .await;
            match touched {
                // A full disk must not stop reads: the idle clock just keeps its older time
                // (the session can only end sooner), and the write that needed room says so.
                Err(StoreError::DiskFull) => tracing::warn!("session not touched: the database disk is full"),
                other => other?,
            }
        }
        Ok(Ok(SignedIn {
            user,
            csrf_token: csrf,
            mfa_passed: mfa,
            reauthenticated_at: reauth,
            token_hash: th,
            actor,
            kiosk_patient: kiosk.map(PatientId),
        }))
    }

    /// Puts a sign-in session into kiosk mode for one patient (the tablet is handed to the
    /// patient). Leaving it takes the staff member's password ([`Store::reauthenticate`]).
    /// Audited as the start of a kiosk read of that patient.
    pub async fn enter_kiosk(&self, actor: &Actor, token_hash: &str, patient: PatientId) -> Result<()> {
        actor.require(Permission::EnterQuestionnaire)?;
        let now = self.now();
        let (actor, th) = (actor.clone(), token_hash.to_string());
        self.write(move |c| {
            let p = crate::patients::get_patient(c, &actor, patient)?;
            let n = c.execute(
                "UPDATE auth_sessions SET kiosk_patient_id = $1 WHERE token_hash = $2 AND ended_at IS NULL AND (kiosk_patient_id IS NULL OR kiosk_patient_id = $1)",
                params![patient.0, th.as_str()],
            )?;
            if n == 0 {
                return Err(StoreError::Forbidden(
                    "this tablet is showing another patient's kiosk; staff must unlock it first".into(),
                ));
            }
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Read,
                    object_type: "kiosk",
                    object_id: None,
                    patient_id: Some(patient),
                    site_id: Some(p.site_id),
                    fields: &[],
                },
            )
        })
        .await
    }

    /// Re-enters the password inside a live session (AC-11) and rotates its token (AC-5).
    /// Returns the new token, or None when the password is wrong.
    pub async fn reauthenticate(&self, token: &str, password: &str) -> Result<Option<String>> {
        let th = token_hash(token);
        let row = {
            let th = th.clone();
            self.read(move |c| {
                c.query_opt(
                    "SELECT u.id, u.password_hash, u.username FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.ended_at IS NULL",
                    params![th.as_str()],
                )?
                .map(|r| Ok::<_, StoreError>((r.i64("id")?, r.text("password_hash")?, r.text("username")?)))
                .transpose()
            })
            .await?
        };
        let Some((uid, hash, username)) = row else { return Ok(None) };
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || credentials::verify_password(&pw, &hash))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = self.now();
        if !ok {
            self.write(move |c| {
                audit_auth(c, &username, Some(uid), now, Action::LoginFail, Some("re-authentication".into()))
            })
            .await?;
            return Ok(None);
        }
        let new_token = credentials::new_token();
        let new_hash = token_hash(&new_token);
        let rotated = self
            .write(move |c| {
                // Re-entering the password is also how staff take the tablet back from kiosk mode.
                // Guarded: the session may have ended, or its token been rotated by a second
                // re-authentication, since it was read; then there is nothing to rotate.
                let n = c.execute(
                    "UPDATE auth_sessions SET token_hash = $1, reauthenticated_at = $2, last_seen_at = $2, kiosk_patient_id = NULL WHERE token_hash = $3 AND ended_at IS NULL",
                    params![new_hash.as_str(), ms(now), th.as_str()],
                )?;
                if n != 1 {
                    return Ok(false);
                }
                audit_auth(c, &username, Some(uid), now, Action::LoginOk, Some("re-authentication".into()))?;
                Ok(true)
            })
            .await?;
        Ok(rotated.then_some(new_token))
    }

    /// Verifies another person by user name and password (a ledger witness). Returns
    /// their actor; the check itself counts as their fresh re-authentication.
    pub async fn verify_witness(&self, username: &str, password: &str) -> Result<Option<Actor>> {
        let username = username.trim().to_lowercase();
        let u = username.clone();
        let row = self
            .read(move |c| {
                c.query_opt("SELECT id, password_hash, disabled FROM users WHERE username = $1", params![u.as_str()])?
                    .map(|r| Ok::<_, StoreError>((r.i64("id")?, r.text("password_hash")?, r.bool("disabled")?)))
                    .transpose()
            })
            .await?;
        let hash = row.as_ref().map_or_else(|| credentials::dummy_hash().to_string(), |r| r.1.clone());
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || credentials::verify_password(&pw, &hash))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = self.now();
        match row {
            Some((id, _, false)) if ok => Ok(Some(
                self.read(move |c| {
                    let u = load_user(c, id)?;
                    actor_for(c, &u, now)
                })
                .await?,
            )),
            other => {
                let uid = other.map(|r| r.0);
                self.write(move |c| audit_auth(c, &username, uid, now, Action::LoginFail, Some("witness".into())))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Ends a session (logout). Replaying its token afterwards finds it ended.
    pub async fn end_session(&self, token: &str) -> Result<()> {
        let th = token_hash(token);
        let now = self.now();
        self.write(move |c| {
            let Some(r) = c.query_opt(
                "SELECT u.id, u.username FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.ended_at IS NULL",
                params![th.as_str()],
            )?
            else {
                return Ok(());
            };
            // Guarded: a logout sent twice at once ends (and audits) the session once.
            if c.execute("UPDATE auth_sessions SET ended_at = $1, end_reason = 'logout' WHERE token_hash = $2 AND ended_at IS NULL", params![ms(now), th.as_str()])? != 1 {
                return Ok(());
            }
            audit_auth(c, &r.text("username")?, Some(r.i64("id")?), now, Action::Logout, None)
        })
        .await
    }

    /// Emergency access to a patient outside the user's sites (AC-3): needs a typed
    /// reason, expires after `minutes`, and writes a high-priority audit event.
    pub async fn break_glass(
        &self,
        actor: &Actor,
        patient: PatientId,
        reason: &str,
        minutes: i64,
    ) -> Result<OffsetDateTime> {
        let Some(uid) = actor.user_id else {
            return Err(StoreError::Forbidden("break-glass access is for signed-in staff".into()));
        };
        let reason = reason.trim().to_string();
        if reason.len() < 10 || reason.len() > 1000 {
            return Err(DomainError::field("reason", "explain the emergency in at least 10 characters").into());
        }
        let now = self.now();
        let expires = now + Duration::minutes(minutes.clamp(1, 240));
        let actor = actor.clone();
        self.write(move |c| {
            // The user's row is held so an account disabled at this moment is not granted access.
            let allowed = c.query_opt("SELECT can_break_glass FROM users WHERE id = $1 AND disabled = $2 FOR UPDATE", params![uid, false])?.map(|r| r.bool("can_break_glass")).transpose()?;
            if allowed != Some(true) {
                return Err(StoreError::Forbidden("you are not in the break-glass group; ask an administrator".into()));
            }
            let site = c.query_opt("SELECT site_id FROM patients WHERE id = $1", params![patient.0])?.ok_or_else(|| StoreError::NotFound(format!("patient {patient}")))?.i64("site_id")?;
            let id = c.insert(
                "INSERT INTO break_glass_grants (user_id, patient_id, reason, granted_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                params![uid, patient.0, reason.as_str(), ms(now), ms(expires)],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::BreakGlass, object_type: "patient", object_id: Some(id.to_string()), patient_id: Some(patient),
                site_id: Some(SiteId(site)), fields: &["reason"],
            })?;
            Ok(expires)
        })
        .await
    }
}
