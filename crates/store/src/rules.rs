//! Clinical rules in force at a site: the built-in rules (data/rules/*.toml) unless the
//! site's medical director has replaced them. Overrides are stored in the site's
//! settings as the full TOML text, validated on save, and parsed once per distinct text.
//! Every writer of `sites.settings` reads it `FOR UPDATE`: each changes one key of the same
//! JSON document, and two at once must not drop each other's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::alerts::SafetyRules;
use keta_domain::ids::SiteId;

use crate::audit::{self, Action, Entry};
use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::{Actor, Store, params};

pub const SAFETY_KEY: &str = "session_safety_toml";

fn builtin() -> Arc<SafetyRules> {
    static B: OnceLock<Arc<SafetyRules>> = OnceLock::new();
    B.get_or_init(|| Arc::new(SafetyRules::builtin().clone())).clone()
}

fn parsed(text: &str) -> Result<Arc<SafetyRules>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<SafetyRules>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(text) {
        return Ok(r.clone());
    }
    let rules = Arc::new(SafetyRules::from_toml(text)?);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(text.to_string(), rules.clone());
    Ok(rules)
}

/// The session-safety rules in force at `site`.
pub(crate) fn safety_rules(c: &mut dyn Conn, site: SiteId) -> Result<Arc<SafetyRules>> {
    let settings = c
        .query_opt("SELECT settings FROM sites WHERE id = $1", params![site.0])?
        .ok_or_else(|| StoreError::NotFound(format!("site {site}")))?
        .text("settings")?;
    safety_rules_in(&settings)
}

/// The session-safety rules a site's settings (`sites.settings`, JSON text) put in force.
pub(crate) fn safety_rules_in(settings: &str) -> Result<Arc<SafetyRules>> {
    let v: serde_json::Value =
        serde_json::from_str(settings).map_err(|e| StoreError::Corrupt(format!("site settings: {e}")))?;
    match v.get(SAFETY_KEY).and_then(|t| t.as_str()) {
        Some(text) => parsed(text),
        None => Ok(builtin()),
    }
}

/// Whether `rules` are a site's own rather than the built-in ones.
pub(crate) fn is_replaced(rules: &Arc<SafetyRules>) -> bool {
    !Arc::ptr_eq(rules, &builtin())
}

impl Store {
    pub async fn site_safety_rules(&self, actor: &Actor, site: SiteId) -> Result<(Arc<SafetyRules>, bool)> {
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| {
            let rules = safety_rules(c, site)?;
            let overridden = is_replaced(&rules);
            Ok((rules, overridden))
        })
        .await
    }

    /// Replaces (or with `None`, restores to built-in) a site's session-safety rules.
    /// The text must load completely; errors name the key to fix and nothing changes.
    pub async fn set_site_safety_rules(&self, actor: &Actor, site: SiteId, toml_text: Option<String>) -> Result<()> {
        actor.require(Permission::PlanTreatment)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        if let Some(t) = &toml_text {
            SafetyRules::from_toml(t).map_err(|e| match e {
                DomainError::Invalid(errs) => DomainError::Invalid(errs),
                other => other,
            })?;
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            write_site_setting(c, &actor, now, site, "site_rules", SAFETY_KEY, toml_text.map(serde_json::Value::String))
        })
        .await
    }
}

/// Site setting: the plasma level (ng/mL) the session screen predicts the fall below.
/// The references give no value, so there is no default.
pub const PK_THRESHOLD_KEY: &str = "pk_threshold_ng_ml";

impl Store {
    /// Sets (or with `None`, clears) the site's PK threshold.
    pub async fn set_site_pk_threshold(&self, actor: &Actor, site: SiteId, ng_ml: Option<f64>) -> Result<()> {
        actor.require(Permission::PlanTreatment)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        if let Some(v) = ng_ml
            && !(v.is_finite() && v > 0.0 && v <= 10_000.0)
        {
            return Err(DomainError::field("ng_ml", "give a plasma level in ng/mL between 0 and 10,000").into());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            write_site_setting(
                c,
                &actor,
                now,
                site,
                "site_settings",
                PK_THRESHOLD_KEY,
                ng_ml.map(|x| serde_json::json!(x)),
            )
        })
        .await
    }
}

/// Sets (or with `None`, removes) one key of a site's settings and audits it, in the caller's
/// write. The site row is locked first, so two writers of different keys never lose each
/// other's change (docs/decisions/0004-concurrency.md).
pub(crate) fn write_site_setting(
    c: &mut dyn Conn,
    actor: &Actor,
    now: time::OffsetDateTime,
    site: SiteId,
    object_type: &'static str,
    key: &'static str,
    value: Option<serde_json::Value>,
) -> Result<()> {
    let settings = c
        .query_opt("SELECT settings FROM sites WHERE id = $1 FOR UPDATE", params![site.0])?
        .ok_or_else(|| StoreError::NotFound(format!("site {site}")))?
        .text("settings")?;
    let mut v: serde_json::Value = serde_json::from_str(&settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let obj = v.as_object_mut().ok_or_else(|| StoreError::Corrupt("site settings is not an object".into()))?;
    match value {
        Some(x) => obj.insert(key.into(), x),
        None => obj.remove(key),
    };
    c.execute("UPDATE sites SET settings = $1 WHERE id = $2", params![v.to_string(), site.0])?;
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Update,
            object_type,
            object_id: Some(site.to_string()),
            patient_id: None,
            site_id: Some(site),
            fields: &[key],
        },
    )
}
