//! The controlled-substance ledger for ketamine vials and esketamine nasal-spray
//! devices (security-reference §2.4 CS-1..CS-7 and §3): what each kind of entry must
//! contain, how amounts are counted, who must witness what, the perpetual-inventory
//! arithmetic, and the reconciliation of the book against physical counts. Pure: the
//! store persists entries and hashes them; this module decides what may be written.
//!
//! # Units
//! Every lot is counted in one unit, fixed by its presentation:
//! * **vials** (racemic ketamine injection) are counted in **mL**, as DEA expects for
//!   liquids (21 CFR 1304.11). A dose is recorded in mg *and* mL, and the two must agree
//!   with the vial's concentration (mg = mL × mg/mL).
//! * **nasal-spray devices** (esketamine) are counted in **mg**. Receipts, counts and
//!   disposals may be entered as whole devices and are converted with the device's
//!   strength (e.g. 28 mg); an administration deducts the mg given, and whatever was
//!   left in an opened device is recorded as waste, exactly like the rest of a vial.
//!
//! Internally every amount is a [`Quantity`]: a whole number of thousandths of the
//! lot's unit (µL or µg), so the arithmetic is exact and `on_hand == Σin − Σout`
//! holds to the last digit.
//!
//! # Append-only
//! Entries are never changed or removed. A mistake is fixed by a *reversal* (an entry
//! that cancels the original's effect and points at it) plus, usually, a *replacement*
//! that points at the original too; both are written together. An entry that would
//! leave a lot with less than nothing on hand is refused and nothing is written.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

use crate::error::{DomainError, Validator};
use crate::ids::{PatientId, SessionId, SiteId};
use crate::units::{MgPerMl, Milligrams, Millilitres};

crate::ids::id_type! {
    /// A stock lot: one receipt (invoice line) of one product lot at one site.
    LotId,
    /// One ledger entry.
    EntryId,
    /// A ledger alert (a count that did not match the book).
    LedgerAlertId,
}

// ---------------------------------------------------------------------------
// Re-authentication (AC-11)
// ---------------------------------------------------------------------------

/// How recently a user must have re-entered their password before a ledger entry or
/// a signature, unless the site configures otherwise (a security setting).
pub const DEFAULT_REAUTHENTICATION_WINDOW: Duration = Duration::minutes(5);
/// The longest window a site may configure.
pub const MAX_REAUTHENTICATION_WINDOW: Duration = Duration::minutes(15);
/// The shortest window a site may configure.
pub const MIN_REAUTHENTICATION_WINDOW: Duration = Duration::minutes(1);
/// Tolerated difference between the re-authentication time and `now` (the two clocks
/// are the same server's, so this only absorbs rounding).
const REAUTH_SKEW: Duration = Duration::seconds(60);

/// Refuses unless the password was re-entered within `window` before `now`. The error
/// is the message to show (the store turns it into a 403).
pub fn check_reauthentication(
    what: &str,
    reauthenticated_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    window: Duration,
) -> Result<(), String> {
    let minutes = window.whole_minutes().max(1);
    let ask = format!("re-enter your password to {what} (it must have been entered within the last {minutes} min)");
    match reauthenticated_at {
        None => Err(ask),
        Some(at) if at > now + REAUTH_SKEW || now - at > window => Err(ask),
        Some(_) => Ok(()),
    }
}

mod book;
mod entries;
mod product;
#[cfg(test)]
mod tests;
mod views;

pub use book::*;
pub use entries::*;
pub use product::*;
pub use views::*;
