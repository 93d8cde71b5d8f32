//! Between sessions: check-in links, what patients answer through them, the safety
//! answers stored before anything else, the relapse watch, and clinic settings.
//!
//! A link is a capability. Its token is 256 random bits shown once (in the reminder, or to the
//! staff member who asked for it) and kept only as a SHA-256, so a copy of the database opens
//! nothing. Patients have no account: their actions are recorded in the audit trail under the
//! name `patient-link:<id>`, and every step (issued, reminder sent, opened, saved, completed,
//! expired, refused) is also an append-only `checkin_events` row the care team sees.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::alerts::{AlertFiring, AlertSeverity};
use keta_domain::between_alerts::BetweenSessionAlerts;
use keta_domain::checkins::{self, CheckInSchedule, FormKind, ScheduleOverride};
use keta_domain::course::{Course, CourseStatus};
use keta_domain::ids::{CourseId, PatientId, SessionId, SiteId};
use keta_domain::instruments::{self, SafetyFlag};
use keta_domain::outcomes::definition_for;
use keta_domain::patient::Patient;
use keta_domain::patient_links::{self, LinkPurpose, LinkState, LinkTimes, RemoteSafetyPolicy};
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse, QuestionnaireResponse};
use keta_domain::relapse::{self, RelapseSettings};
use keta_domain::session::SessionState;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::audit::{self, Action, Created, Entry};
use crate::conn::{Conn, Row};
use crate::credentials::token_hash;
use crate::error::{Result, StoreError};
use crate::time_codec::{from_json, from_ms, json, ms, opt_from_ms};
use crate::{Actor, SiteScope, Store, params};

mod links;
mod patient_side;
mod relapse_watch;
mod schedules;
mod settings;
mod staff;
#[cfg(test)]
mod tests;

pub use links::*;
pub use patient_side::*;
pub(crate) use relapse_watch::*;
pub use schedules::*;
pub use settings::*;
pub use staff::*;
