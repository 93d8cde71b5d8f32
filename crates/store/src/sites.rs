//! Sites and chairs.

use keta_domain::ids::{ChairId, SiteId};
use keta_domain::site::{Chair, NewSite, Site};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::{Actor, Store, params};

const SITE_COLS: &str = "id, code, name, time_zone, crisis_line, settings";

fn site_from(r: &Row) -> Result<Site> {
    Ok(Site {
        id: SiteId(r.i64("id")?),
        code: r.text("code")?,
        name: r.text("name")?,
        time_zone: r.text("time_zone")?,
        crisis_line: r.text("crisis_line")?,
        settings: crate::time_codec::from_json(&r.text("settings")?)?,
    })
}

pub(crate) fn get_site(c: &mut dyn Conn, id: SiteId) -> Result<Site> {
    let r = c
        .query_opt(&format!("SELECT {SITE_COLS} FROM sites WHERE id = $1"), params![id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("site {id}")))?;
    site_from(&r)
}

impl Store {
    pub async fn create_site(&self, actor: &Actor, new: NewSite, chairs: Vec<String>) -> Result<Site> {
        actor.require(keta_domain::access::Permission::ManageUsers)?;
        // The site's fields and its chairs' names are reported together.
        let mut errors = Vec::new();
        for checked in [new.validate(), keta_domain::site::validate_chair_names(&chairs)] {
            if let Err(keta_domain::DomainError::Invalid(e)) = checked {
                errors.extend(e);
            }
        }
        if !errors.is_empty() {
            return Err(keta_domain::DomainError::Invalid(errors).into());
        }
        let actor = actor.clone();
        let now = self.now();
        self.write(move |c| {
            let id = c.insert(
                "INSERT INTO sites (code, name, time_zone, crisis_line, settings) VALUES ($1, $2, $3, $4, '{}') RETURNING id",
                params![new.code.as_str(), new.name.trim(), new.time_zone.as_str(), new.crisis_line.trim()],
            )?;
            for name in &chairs {
                c.execute("INSERT INTO chairs (site_id, name) VALUES ($1, $2)", params![id, name.trim()])?;
            }
            // The administrator who opens a site is assigned to it, or they could not see it
            // (a new clinic's first administrator starts with no sites).
            if let Some(uid) = actor.user_id {
                c.execute("INSERT INTO user_sites (user_id, site_id) VALUES ($1, $2)", params![uid, id])?;
            }
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "site", object_id: Some(id.to_string()), patient_id: None,
                site_id: Some(SiteId(id)), fields: &["code", "name", "time_zone", "crisis_line", "chairs"],
            })?;
            get_site(c, SiteId(id))
        })
        .await
    }

    pub async fn list_sites(&self, actor: &Actor) -> Result<Vec<Site>> {
        let scope = actor.scope.sql("id");
        self.read(move |c| {
            c.query(&format!("SELECT {SITE_COLS} FROM sites WHERE {scope} ORDER BY code"), &[])?
                .iter()
                .map(site_from)
                .collect()
        })
        .await
    }

    pub async fn list_chairs(&self, actor: &Actor, site: SiteId) -> Result<Vec<Chair>> {
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| chairs_of(c, site)).await
    }
}

pub(crate) fn chairs_of(c: &mut dyn Conn, site: SiteId) -> Result<Vec<Chair>> {
    c.query("SELECT id, site_id, name FROM chairs WHERE site_id = $1 ORDER BY name", params![site.0])?
        .iter()
        .map(|r| Ok(Chair { id: ChairId(r.i64("id")?), site_id: SiteId(r.i64("site_id")?), name: r.text("name")? }))
        .collect()
}
