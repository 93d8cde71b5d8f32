//! The demo clinic's staff accounts: one per role, with a shared demo password and fixed
//! TOTP keys so the demo (and its browser tests) can sign in. Demo data only: a real
//! installation has no accounts until first-run setup (`/setup` or `keta user add`).

use keta_domain::access::Role;
use keta_store::{Actor, SiteScope, Store};

pub const DEMO_PASSWORD: &str = "ketamine demo clinic";

pub struct DemoAccount {
    pub username: &'static str,
    pub role: Role,
    pub totp_key: String,
}

/// The fixed TOTP key of a demo role: valid base32, 32 characters.
pub fn demo_totp_key(role: Role) -> String {
    let name = role.as_str().replace('_', "").to_uppercase();
    format!("KETADEMO{name:A<24}")
}

pub fn accounts() -> Vec<DemoAccount> {
    [
        ("admin.demo", Role::Administrator),
        ("dr.demo", Role::Prescriber),
        ("rn.demo", Role::Nurse),
        ("desk.demo", Role::FrontDesk),
        ("audit.demo", Role::Auditor),
        ("research.demo", Role::Researcher),
    ]
    .into_iter()
    .map(|(username, role)| DemoAccount { username, role, totp_key: demo_totp_key(role) })
    .collect()
}

/// Creates the demo accounts unless accounts already exist. Everyone works at every demo site.
pub async fn ensure(store: &Store) -> anyhow::Result<()> {
    if store.user_count().await? > 0 {
        return Ok(());
    }
    let sites: Vec<_> = store.list_sites(&Actor::system()).await?.into_iter().map(|s| s.id).collect();
    let admin = Actor::staff("admin.demo", Role::Administrator, SiteScope::All);
    for (i, a) in accounts().into_iter().enumerate() {
        let actor = if i == 0 { Actor::system() } else { admin.clone() };
        store
            .create_user(
                &actor,
                keta_store::accounts::NewUser {
                    username: a.username.into(),
                    display_name: format!("Demo {}", a.role.label()),
                    role: a.role,
                    password: DEMO_PASSWORD.into(),
                    site_ids: sites.clone(),
                    can_break_glass: a.role == Role::Prescriber,
                    totp_secret: Some(a.totp_key),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("creating demo account {}: {e}", a.username))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_keys_are_valid_base32_totp_keys() {
        for a in accounts() {
            assert_eq!(a.totp_key.len(), 32);
            assert!(keta_store::credentials::totp_at_step(&a.totp_key, 1).is_some(), "{}", a.totp_key);
        }
    }
}
