//! The panel's view models: what the templates show.

use super::*;

/// The panel, for a user who may open clinical records.
pub(crate) struct BetweenView {
    /// The site's time zone, named once above the times.
    pub zone: String,
    pub safety: Vec<SafetyRow>,
    pub relapse: Vec<RelapseView>,
    /// Links that can still be answered (open or not yet open), soonest to close first.
    pub links_current: Vec<LinkRow>,
    /// Completed and expired links, newest first.
    pub links_past: Vec<LinkRow>,
    pub question_sets: Vec<QuestionSetRow>,
    pub home: Vec<HomeView>,
    pub can_send: bool,
    pub can_review: bool,
    pub can_dispense: bool,
    /// What "Send a check-in now" offers.
    pub forms: Vec<Choice>,
    pub courses: Vec<Choice>,
    pub send_form: FormData,
    pub send_errors: Errors,
    pub send_checked: bool,
    /// The check-in schedule of each course that has one (not stopped), newest course first.
    pub schedules: Vec<ScheduleView>,
    /// The user may change a course's schedule (prescribers).
    pub can_plan: bool,
}

impl BetweenView {
    /// Open the "send" form (it was just submitted with errors).
    pub fn send_open(&self) -> bool {
        self.send_errors.any()
    }
    /// Completed and expired links beyond the first few (folded away).
    pub fn links_past_shown(&self) -> &[LinkRow] {
        &self.links_past[..self.links_past.len().min(SHOWN)]
    }
    pub fn links_past_folded(&self) -> &[LinkRow] {
        &self.links_past[self.links_past.len().min(SHOWN)..]
    }
    pub fn safety_shown(&self) -> &[SafetyRow] {
        &self.safety[..self.safety.len().min(SHOWN)]
    }
    pub fn safety_folded(&self) -> &[SafetyRow] {
        &self.safety[self.safety.len().min(SHOWN)..]
    }
    pub fn question_sets_shown(&self) -> &[QuestionSetRow] {
        &self.question_sets[..self.question_sets.len().min(SHOWN)]
    }
    pub fn question_sets_folded(&self) -> &[QuestionSetRow] {
        &self.question_sets[self.question_sets.len().min(SHOWN)..]
    }
    /// Flagged question-set answers, for the line above the list.
    pub fn flagged_sets(&self) -> usize {
        self.question_sets.iter().filter(|q| !q.flags.is_empty()).count()
    }
}

pub(crate) struct SafetyRow {
    pub when: String,
    pub instrument: String,
    pub item: String,
    pub answer: String,
    pub alert: String,
    /// The alert is still open (its banner is at the top of the chart).
    pub alert_open: bool,
}

pub(crate) struct RelapseView {
    pub course: String,
    pub instrument: String,
    pub since_last: String,
    pub next_planned: String,
    pub status: &'static str,
    pub status_class: &'static str,
    /// One line per response episode, oldest first.
    pub episodes: Vec<String>,
    pub flag: Option<RelapseFlagView>,
    pub threshold: String,
}

pub(crate) struct RelapseFlagView {
    pub headline: String,
    pub suggestion: String,
}

pub(crate) struct LinkRow {
    pub id: i64,
    pub form: String,
    pub course: String,
    /// A safety answer came in through this link.
    pub safety: bool,
    pub state: &'static str,
    pub state_class: &'static str,
    pub window: String,
    pub first_opened: String,
    /// "Answers saved 14:10, not yet sent": the patient began and chose to finish later.
    pub progress_saved: Option<String>,
    pub reminder: String,
    pub reminder_failed: bool,
    /// "New link" is offered (an open or not-yet-open patient link).
    pub can_reissue: bool,
}

pub(crate) struct QuestionSetRow {
    pub name: String,
    pub when: String,
    /// (css class, message)
    pub flags: Vec<(&'static str, String)>,
    /// (question, answer)
    pub answers: Vec<(String, String)>,
}

pub(crate) struct HomeView {
    pub course_id: i64,
    pub course: String,
    /// Why "may dispense" (first supply, or up to date).
    pub may_dispense_note: &'static str,
    pub hold: Vec<String>,
    pub missing_settings: Option<String>,
    pub dispensed: String,
    pub logged: String,
    pub on_hand: String,
    pub issues: Vec<String>,
    pub missed: String,
    pub screens: Vec<ScreenRow>,
    pub dispense_form: FormData,
    pub dispense_errors: Errors,
}

impl HomeView {
    pub fn may_dispense(&self) -> bool {
        self.hold.is_empty()
    }
    pub fn screens_shown(&self) -> &[ScreenRow] {
        &self.screens[..self.screens.len().min(SHOWN)]
    }
    pub fn screens_folded(&self) -> &[ScreenRow] {
        &self.screens[self.screens.len().min(SHOWN)..]
    }
    pub fn dispense_open(&self) -> bool {
        self.dispense_errors.any()
    }
    /// A field error of the dispense form.
    pub fn dispense_error(&self, field: &str) -> String {
        self.dispense_errors.get(field).unwrap_or_default()
    }
}

pub(crate) struct ScreenRow {
    pub id: i64,
    pub when: String,
    pub outcome: &'static str,
    pub outcome_class: &'static str,
    pub sitter: String,
    pub refusals: Vec<String>,
    pub reviewed: Option<String>,
    pub needs_review: bool,
    pub note: String,
    pub errors: Errors,
}

impl ScreenRow {
    pub fn note_error(&self) -> String {
        self.errors.get("note").unwrap_or_default()
    }
}

/// One course's check-in schedule: what is sent and when, and (for prescribers) the form that
/// changes it for this patient.
pub(crate) struct ScheduleView {
    pub course_id: i64,
    pub course: String,
    /// The clinic's schedule it starts from, e.g. "In-clinic courses (IV, IM, esketamine)".
    pub name: String,
    /// "Changed by … on …: reason" when the patient's schedule differs from the clinic's.
    pub changed: Option<String>,
    /// A stored change that no longer applies to the clinic's schedule.
    pub warning: Option<String>,
    /// The clinic's items (in its order), then items added for this patient.
    pub rows: Vec<ScheduleRow>,
    pub reason: String,
    pub errors: Errors,
    /// Just saved: "Schedule changed" is shown.
    pub saved: bool,
}

impl ScheduleView {
    /// Open the `<details>` (just saved, or submitted with errors).
    pub fn open(&self) -> bool {
        self.saved || self.errors.any()
    }
    /// What the course's schedule sends now.
    pub fn current(&self) -> Vec<&ScheduleRow> {
        self.rows.iter().filter(|r| r.current).collect()
    }
    /// The clinic's items this patient is not sent.
    pub fn removed(&self) -> Vec<&ScheduleRow> {
        self.rows.iter().filter(|r| !r.current).collect()
    }
    pub fn reason_error(&self) -> String {
        self.errors.get("reason").unwrap_or_default()
    }
    /// Messages for the form as a whole, and errors no field shows.
    pub fn general_errors(&self) -> Vec<String> {
        let fields: Vec<String> = self.rows.iter().map(|r| interval_field(&r.id)).collect();
        let mut placed: Vec<&str> = fields.iter().map(String::as_str).collect();
        placed.push("reason");
        let mut out = self.errors.general.clone();
        out.extend(self.errors.unplaced(&placed));
        out
    }
}

pub(crate) struct ScheduleRow {
    pub id: String,
    /// The form's name for staff ("PHQ-9").
    pub form: String,
    /// When, in words (as stored for this patient; the clinic's timing for a removed item).
    pub timing: String,
    /// In the course's schedule now.
    pub current: bool,
    /// The "send" checkbox (the stored state, or the user's input after an error).
    pub send: bool,
    /// For an `every` item: the interval in days as shown in its input.
    pub interval: Option<String>,
    /// Not in the clinic's schedule: added for this patient (through the API).
    pub added: bool,
    pub error: String,
}

impl ScheduleRow {
    pub fn interval_field(&self) -> String {
        interval_field(&self.id)
    }
}

/// The link shown once after "Send a check-in now" or "New link".
pub(crate) struct IssuedView {
    pub url: String,
    pub form: String,
    pub until: String,
    pub delivery: String,
    pub delivered: bool,
    pub reissued: bool,
}

/// What a POST hands back to the chart: the issued link, or a form to show again with errors.
#[derive(Default)]
pub(crate) struct BetweenInput {
    pub issued: Option<IssuedView>,
    pub send: Option<(FormData, Errors)>,
    pub review: Option<(i64, FormData, Errors)>,
    pub dispense: Option<(i64, FormData, Errors)>,
    /// A refusal that belongs to no form on the page (a link or screen that changed meanwhile).
    pub notice: Option<String>,
    /// A course's check-in schedule form: `None` for "just saved", else the input and errors.
    pub schedule: Option<(i64, Option<(FormData, Errors)>)>,
}
