//! API clients: machine accounts with read-only FHIR access limited to chosen sites.
//!
//! An administrator creates one and is shown its bearer token once; only the token's SHA-256
//! is stored. Revoking is immediate and kept on record. A client acts under the name
//! `api-client:<name>` (so the audit trail names it on every patient read) with the read
//! permissions of clinical staff, and its token is accepted only by the FHIR read routes:
//! nothing a client can call writes clinical data.

use keta_domain::DomainError;
use keta_domain::access::{Permission, Role};
use keta_domain::ids::SiteId;

use crate::audit::{self, Action, Entry};
use crate::conn::Conn;
use crate::credentials::{new_token, token_hash};
use crate::error::{Result, StoreError};
use crate::time_codec::{from_ms, ms};
use crate::{Actor, SiteScope, Store, params};

/// The one scope there is: FHIR read and search.
pub const FHIR_READ: &str = "fhir.read";
/// Every bearer token starts with this, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "keta_fhir_";
/// Access tokens from the OAuth2 client-credentials grant start with this.
pub const ACCESS_TOKEN_PREFIX: &str = "keta_at_";
/// How often the "last used" time is refreshed (a write per request would be waste).
const LAST_USED_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiClient {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub site_ids: Vec<SiteId>,
    pub created_at: time::OffsetDateTime,
    pub created_by: String,
    pub revoked_at: Option<time::OffsetDateTime>,
    pub last_used_at: Option<time::OffsetDateTime>,
}

/// A new client and its token, shown once.
#[derive(Debug, Clone)]
pub struct IssuedClient {
    pub client: ApiClient,
    pub token: String,
}

/// An access token from the client-credentials grant, shown once.
#[derive(Debug, Clone)]
pub struct IssuedAccessToken {
    pub token: String,
    pub scope: String,
    pub expires_in_secs: i64,
}

/// The actor a client's requests run as.
pub fn client_actor(name: &str, sites: Vec<SiteId>) -> Actor {
    Actor::staff(format!("api-client:{name}"), Role::Nurse, SiteScope::Sites(sites))
}

fn validate_name(name: &str) -> std::result::Result<(), DomainError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::field("name", "use 1-64 letters, digits, '-', '_' or '.', e.g. payer-export"))
    }
}

fn load(c: &mut dyn Conn, id: i64) -> Result<ApiClient> {
    let r = c
        .query_opt(
            "SELECT id, name, scope, created_at, created_by, revoked_at, last_used_at FROM api_clients WHERE id = $1",
            params![id],
        )?
        .ok_or_else(|| StoreError::NotFound(format!("API client {id}")))?;
    let site_ids = c
        .query("SELECT site_id FROM api_client_sites WHERE client_id = $1 ORDER BY site_id", params![id])?
        .iter()
        .map(|s| s.i64("site_id").map(SiteId))
        .collect::<Result<Vec<_>>>()?;
    Ok(ApiClient {
        id: r.i64("id")?,
        name: r.text("name")?,
        scope: r.text("scope")?,
        site_ids,
        created_at: from_ms(r.i64("created_at")?)?,
        created_by: r.text("created_by")?,
        revoked_at: r.opt_i64("revoked_at")?.map(from_ms).transpose()?,
        last_used_at: r.opt_i64("last_used_at")?.map(from_ms).transpose()?,
    })
}

impl Store {
    /// Creates a client for `sites` (each must be one of the administrator's) and returns its
    /// token, which is not stored and cannot be shown again.
    pub async fn create_api_client(&self, actor: &Actor, name: String, sites: Vec<SiteId>) -> Result<IssuedClient> {
        actor.require(Permission::ManageUsers)?;
        let name = name.trim().to_string();
        validate_name(&name)?;
        if sites.is_empty() {
            return Err(DomainError::field("site_ids", "choose at least one site the client may read").into());
        }
        if let Some(s) = sites.iter().find(|s| !actor.scope.allows(**s)) {
            return Err(DomainError::field("site_ids", format!("you are not assigned to site {s}")).into());
        }
        let now = self.now();
        let token = format!("{TOKEN_PREFIX}{}", new_token());
        let hash = token_hash(&token);
        let act = actor.clone();
        let client = self
            .write(move |c| {
                for s in &sites {
                    crate::sites::get_site(c, *s).map_err(|_| DomainError::field("site_ids", format!("site {s} does not exist")))?;
                }
                if c.query_opt("SELECT id FROM api_clients WHERE name = $1", params![name.as_str()])?.is_some() {
                    return Err(DomainError::field("name", format!("an API client named '{name}' exists; choose another name")).into());
                }
                let id = c.insert(
                    "INSERT INTO api_clients (name, scope, token_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    params![name.as_str(), FHIR_READ, hash.as_str(), ms(now), act.name.as_str()],
                )?;
                for s in &sites {
                    c.execute("INSERT INTO api_client_sites (client_id, site_id) VALUES ($1, $2)", params![id, s.0])?;
                }
                audit::record(c, &act, now, Entry {
                    action: Action::Create, object_type: "api_client", object_id: Some(id.to_string()), patient_id: None,
                    site_id: None, fields: &["name", "scope", "site_ids", "token"],
                })?;
                load(c, id)
            })
            .await?;
        Ok(IssuedClient { client, token })
    }

    pub async fn list_api_clients(&self, actor: &Actor) -> Result<Vec<ApiClient>> {
        actor.require(Permission::ManageUsers)?;
        self.read(|c| {
            let ids = c.query("SELECT id FROM api_clients ORDER BY id", &[])?;
            ids.iter().map(|r| load(c, r.i64("id")?)).collect()
        })
        .await
    }

    /// Revokes a client's token at once; the record stays.
    pub async fn revoke_api_client(&self, actor: &Actor, id: i64) -> Result<ApiClient> {
        actor.require(Permission::ManageUsers)?;
        let now = self.now();
        let act = actor.clone();
        self.write(move |c| {
            let client = load(c, id)?;
            if client.revoked_at.is_some() {
                return Err(StoreError::Conflict(format!("API client '{}' is already revoked", client.name)));
            }
            c.execute(
                "UPDATE api_clients SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL",
                params![ms(now), act.name.as_str(), id],
            )?;
            audit::record(
                c,
                &act,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "api_client",
                    object_id: Some(id.to_string()),
                    patient_id: None,
                    site_id: None,
                    fields: &["revoked_at"],
                },
            )?;
            load(c, id)
        })
        .await
    }

    /// The OAuth2 client-credentials grant: the client named `client_id` proves itself with
    /// its secret (the credential issued when it was created) and gets a new access token for
    /// `scope` that expires after `lifetime`; only the token's hash is stored. `None` when the
    /// client is unknown, revoked or the secret is wrong (the caller answers `invalid_client`).
    /// Which scopes a client may have is the caller's to check before asking.
    pub async fn issue_access_token(
        &self,
        client_id: &str,
        secret: &str,
        scope: String,
        lifetime: time::Duration,
    ) -> Result<Option<IssuedAccessToken>> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let secret_hash = token_hash(secret);
        let name = client_id.to_string();
        let now = self.now();
        let expires = now + lifetime;
        let token = format!("{ACCESS_TOKEN_PREFIX}{}", new_token());
        let hash = token_hash(&token);
        let issued = self
            .write(move |c| {
                let Some(r) = c.query_opt(
                    "SELECT id FROM api_clients WHERE name = $1 AND token_hash = $2 AND revoked_at IS NULL",
                    params![name.as_str(), secret_hash.as_str()],
                )?
                else {
                    return Ok(None);
                };
                let id = r.i64("id")?;
                let sites = c
                    .query("SELECT site_id FROM api_client_sites WHERE client_id = $1 ORDER BY site_id", params![id])?
                    .iter()
                    .map(|s| s.i64("site_id").map(SiteId))
                    .collect::<Result<Vec<_>>>()?;
                // Expired tokens are of no further use; they go as new ones come.
                c.execute("DELETE FROM api_access_tokens WHERE expires_at < $1", params![ms(now)])?;
                let token_id = c.insert(
                    "INSERT INTO api_access_tokens (client_id, token_hash, scope, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    params![id, hash.as_str(), scope.as_str(), ms(now), ms(expires)],
                )?;
                audit::record(
                    c,
                    &client_actor(&name, sites),
                    now,
                    Entry {
                        action: Action::Create,
                        object_type: "api_access_token",
                        object_id: Some(token_id.to_string()),
                        patient_id: None,
                        site_id: None,
                        fields: &["scope", "expires_at"],
                    },
                )?;
                Ok(Some(scope))
            })
            .await?;
        Ok(issued.map(|scope| IssuedAccessToken { token, scope, expires_in_secs: lifetime.whole_seconds() }))
    }

    /// The actor behind a bearer token (a client's own credential, or an access token from
    /// the client-credentials grant) and its scope, or `None` for an unknown, expired or
    /// revoked one. Revoking a client ends its access tokens too.
    pub async fn resolve_api_token(&self, token: &str) -> Result<Option<(Actor, String)>> {
        if token.starts_with(ACCESS_TOKEN_PREFIX) {
            let hash = token_hash(token);
            let now = ms(self.now());
            return self
                .read(move |c| {
                    let Some(r) = c.query_opt(
                        "SELECT k.id AS client_id, k.name AS name, t.scope AS scope FROM api_access_tokens t \
                         JOIN api_clients k ON k.id = t.client_id \
                         WHERE t.token_hash = $1 AND t.expires_at > $2 AND k.revoked_at IS NULL",
                        params![hash.as_str(), now],
                    )?
                    else {
                        return Ok(None);
                    };
                    let id = r.i64("client_id")?;
                    let sites = c
                        .query(
                            "SELECT site_id FROM api_client_sites WHERE client_id = $1 ORDER BY site_id",
                            params![id],
                        )?
                        .iter()
                        .map(|s| s.i64("site_id").map(SiteId))
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Some((client_actor(&r.text("name")?, sites), r.text("scope")?)))
                })
                .await;
        }
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let found = self
            .read(move |c| {
                let Some(r) = c.query_opt(
                    "SELECT id, name, scope, last_used_at FROM api_clients WHERE token_hash = $1 AND revoked_at IS NULL",
                    params![hash.as_str()],
                )?
                else {
                    return Ok(None);
                };
                let id = r.i64("id")?;
                let sites = c
                    .query("SELECT site_id FROM api_client_sites WHERE client_id = $1 ORDER BY site_id", params![id])?
                    .iter()
                    .map(|s| s.i64("site_id").map(SiteId))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Some((id, r.text("name")?, r.text("scope")?, r.opt_i64("last_used_at")?, sites)))
            })
            .await?;
        let Some((id, name, scope, last_used, sites)) = found else { return Ok(None) };
        let now = ms(self.now());
        if last_used.is_none_or(|t| now - t >= LAST_USED_EVERY_MS) {
            self.write(move |c| {
                c.execute("UPDATE api_clients SET last_used_at = $1 WHERE id = $2", params![now, id])?;
                Ok(())
            })
            .await?;
        }
        Ok(Some((client_actor(&name, sites), scope)))
    }
}
