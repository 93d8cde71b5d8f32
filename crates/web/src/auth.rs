//! Who is signed in. Every HTML page and API handler that touches patient data takes a
//! [`CurrentUser`]; permissions are then enforced by the store for the user's actor.
//!
//! (Interim: until the account store lands, this resolves to the demo prescriber.
//! The struct's fields are the stable interface.)

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keta_domain::access::Role;
use keta_domain::ids::SiteId;
use keta_store::{Actor, SiteScope};
use time::OffsetDateTime;

use crate::error::ApiError;

/// The signed-in staff member.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub actor: Actor,
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Sites the user is assigned to (the board shows one per site).
    pub site_ids: Vec<SiteId>,
    /// Must accompany every state-changing request: the `csrf_token` form field,
    /// or the `X-CSRF-Token` header for htmx and JSON requests.
    pub csrf_token: String,
    /// When the user last re-entered their password (signing, ledger entries).
    pub reauthenticated_at: Option<OffsetDateTime>,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(CurrentUser {
            actor: Actor::staff("demo.prescriber", Role::Prescriber, SiteScope::All),
            user_id: 0,
            username: "demo.prescriber".into(),
            display_name: "Demo Prescriber".into(),
            role: Role::Prescriber,
            site_ids: vec![],
            csrf_token: "interim".into(),
            reauthenticated_at: None,
        })
    }
}
