//! The demo clinic between sessions: what each site tells its patients, the home
//! pre-dose intervals, and one at-home dose planned for today (with a supply handed over) so
//! the pre-dose screen, the sitter's link and the dose log can be tried. Check-in links themselves are issued by the
//! server's sweep when it starts, and their reminders land in the demo's outbox (log-only
//! delivery).
//!
//! The intervals below are DEMO values for a synthetic clinic, not clinical guidance: the
//! reference gives none (clinical-reference §2.1, §3.2), which is why a real clinic must set
//! its own before the screen runs.

use keta_domain::course::{CourseStatus, Route};
use keta_domain::session::NewSession;
use keta_domain::units::Milligrams;
use keta_store::checkins::PatientContactSettings;
use keta_store::home::{HomePreDoseSettings, NewDispense};
use keta_store::{Actor, Store};
use time::Duration;

/// Synthetic demo values (see the module docs).
const DEMO_HOME_SETTINGS: HomePreDoseSettings = HomePreDoseSettings { alcohol_free_hours: 24, sedative_free_hours: 24 };

pub async fn ensure(store: &Store) -> anyhow::Result<()> {
    let system = Actor::system();
    let already = store.home_pre_dose_settings().await?.is_some();
    if already {
        return Ok(());
    }
    store.set_home_pre_dose_settings(&system, DEMO_HOME_SETTINGS).await?;
    for (i, site) in store.list_sites(&system).await?.into_iter().enumerate() {
        store
            .set_patient_contact_settings(
                &system,
                site.id,
                PatientContactSettings {
                    crisis_instructions: format!(
                        "If you might act on these thoughts, or you are in danger now, call the crisis line below or your local emergency number straight away, and stay with someone you trust. {} has been alerted and a clinician will call you today.",
                        site.name
                    ),
                    clinic_phone: Some(format!("(555) 010-{:04}", 100 + i)),
                },
            )
            .await?;
    }
    // One active at-home course gets a dose planned for this hour, so its pre-dose screen is open.
    let now = store.now();
    let home_routes: Vec<Route> = Route::ALL.iter().copied().filter(|r| r.is_home()).collect();
    let home_course = store.first_course_on_routes(&system, &home_routes, CourseStatus::Active).await?.map(|c| c.id);
    if let Some(course) = home_course {
        // The same dose as the course's last session, and a supply of it handed over, so the
        // patient's page can say what to take ("2 of your 100 mg troches").
        let planned = store.latest_planned_dose(&system, course).await?.map(|mg| mg.0);
        let at = now.replace_minute(0)?.replace_second(0)?.replace_nanosecond(0)? + Duration::hours(1);
        store
            .create_session(
                &system,
                course,
                NewSession { scheduled_for: at, chair_id: None, planned_dose_mg: planned.map(Milligrams) },
            )
            .await?;
        if let Some(mg) = planned {
            // Synthetic supply: units of half the planned dose, ten doses' worth.
            store.record_dispense(&system, course, NewDispense { units: 20, unit_strength_mg: mg / 2.0 }).await?;
        }
    }
    Ok(())
}
