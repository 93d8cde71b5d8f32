//! Short patient-completed question sets that are not validated instruments, as data
//! (`data/question-sets/*.toml`).
//!
//! The check-in schedules (`data/checkins/default.toml`, [`crate::checkins`]) send two of
//! them: `after_session` (about 24 h after each session or home dose) and `urinary_symptoms`
//! (the periodic bladder check of clinical-reference.md §4.3: "periodic urinary-symptom
//! question set; flag dysuria/frequency/haematuria" [S11][S55][S6]). Their wording is Keta's
//! own, written for the project in plain language, so — unlike copyrighted instruments — it
//! is stored in full.
//!
//! A [`QuestionSet`] is a list of [`Question`]s. A question may carry a [`FlagRule`]: when
//! the answer matches, [`evaluate`] raises a [`QuestionSetFlag`] for staff with the rule's
//! severity, message and source. Flags exist only where the reference supports one (§4.3
//! urinary symptoms); their severity is a clinic setting where the reference gives no urgency
//! level, and the data file says so.
//!
//! Question sets deliberately have **no suicidality question**: that check is PHQ-9 item 9
//! (§1.2, §4.3), a safety item of the instrument catalog whose rule drives crisis handling.
//!
//! Answers are a map from question id to [`AnswerValue`] (JSON: `true`/`false` for yes/no, the
//! option's `value` string for a choice, a whole number for a scale, a string for free text).
//! [`validate_answers`] checks a submitted form (a form saved for later is kept as typed and
//! checked when finished). It reports every problem at once, naming the question
//! (`answers.<id>`) and what to fix.
//!
//! The files are embedded with `include_str!` and parsed on first use ([`catalog`]), as the
//! instrument catalog is; a broken file panics with its path, which the tests catch.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::alerts::AlertSeverity;
use crate::error::{DomainError, Validator};
use crate::instruments::SourceRef;

/// One option of a [`QuestionKind::Choice`] question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    /// Stored answer, e.g. `much_better`.
    pub value: String,
    /// What the patient sees, e.g. "Much better".
    pub label: String,
}

/// What kind of answer a question takes. TOML: `kind = { type = "yes_no" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum QuestionKind {
    /// Answer `true` (yes) or `false` (no).
    YesNo,
    /// Answer one option's `value`.
    Choice { options: Vec<ChoiceOption> },
    /// Answer a whole number `min..=max`; the labels name the two ends.
    Scale { min: i32, max: i32, min_label: String, max_label: String },
    /// Answer text of at most `max_len` characters.
    FreeText { max_len: usize },
}

/// When a flag fires. TOML: `when = { equals = "yes" }` or `when = { at_least = 7 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FlagWhen {
    /// The answer equals this: `"yes"`/`"no"` for a yes/no question, an option's `value` for a
    /// choice.
    Equals(String),
    /// A scale answer at or above this.
    AtLeast(i32),
}

/// A rule on one question's answer that raises a flag for staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
// Named apart in the OpenAPI document: another `FlagRule` would take its place.
#[schema(as = QuestionFlagRule)]
pub struct FlagRule {
    /// Stable code of the flag, e.g. `urinary_haematuria`; unique within the set.
    pub code: String,
    pub when: FlagWhen,
    pub severity: AlertSeverity,
    /// Shown to staff.
    pub message: String,
    /// Where the rule (and its severity) comes from.
    pub source: SourceRef,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Stable id, the key of the answer map, e.g. `dysuria`.
    pub id: String,
    /// Wording shown to the patient.
    pub text: String,
    pub kind: QuestionKind,
    /// Must be answered before the form is submitted.
    pub required: bool,
    #[serde(default)]
    pub flag: Option<FlagRule>,
    /// Why the question is asked (the clinical fact behind it), where there is one.
    #[serde(default)]
    pub source: Option<SourceRef>,
}

/// A short question set, as defined in `data/question-sets/<code>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionSet {
    /// Stable code, as named by check-in schedules (`after_session`, `urinary_symptoms`).
    pub code: String,
    /// Title shown to the patient.
    pub name: String,
    /// Shown above the questions; paragraphs separated by a blank line.
    pub intro: String,
    pub questions: Vec<Question>,
    pub source: SourceRef,
}

impl QuestionSet {
    /// Question by id.
    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }

    fn ids(&self) -> String {
        self.questions.iter().map(|q| q.id.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// One answer. JSON/TOML: `true`/`false` (yes/no), a whole number (scale), or a string (a
/// choice option's `value`, or free text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AnswerValue {
    YesNo(bool),
    Number(i32),
    Text(String),
}

impl fmt::Display for AnswerValue {
    /// `yes`/`no`, the number, or the text — the form [`FlagWhen::Equals`] compares with.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerValue::YesNo(true) => f.write_str("yes"),
            AnswerValue::YesNo(false) => f.write_str("no"),
            AnswerValue::Number(n) => write!(f, "{n}"),
            AnswerValue::Text(t) => f.write_str(t),
        }
    }
}

/// A flag raised by an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuestionSetFlag {
    /// Question-set code, e.g. `urinary_symptoms`.
    pub question_set: String,
    /// The question whose answer raised it.
    pub question: String,
    /// The rule's code, e.g. `urinary_haematuria`.
    pub code: String,
    pub severity: AlertSeverity,
    pub message: String,
    pub source: SourceRef,
}

macro_rules! embedded {
    ($($file:literal),* $(,)?) => {
        &[$((
            concat!("data/question-sets/", $file),
            include_str!(concat!("../../../data/question-sets/", $file)),
        )),*]
    };
}

/// The data files, embedded at compile time (path for messages, contents).
const EMBEDDED: &[(&str, &str)] = embedded!["after_session.toml", "urinary_symptoms.toml"];

/// All question sets Keta ships, parsed on first use.
///
/// # Panics
/// If an embedded data file is invalid — a build defect, caught by this module's tests.
pub fn catalog() -> &'static [QuestionSet] {
    static SETS: OnceLock<Vec<QuestionSet>> = OnceLock::new();
    SETS.get_or_init(|| from_sources(EMBEDDED).unwrap_or_else(|e| panic!("{e}")))
}

/// A question set by code (`after_session`, `urinary_symptoms`).
pub fn get(code: &str) -> Option<&'static QuestionSet> {
    catalog().iter().find(|s| s.code == code)
}

fn from_sources(sources: &[(&str, &str)]) -> Result<Vec<QuestionSet>, String> {
    let mut sets = Vec::with_capacity(sources.len());
    let mut codes = HashSet::new();
    for (path, text) in sources {
        let set = parse_question_set(text).map_err(|e| format!("embedded question set {path} is invalid: {e}"))?;
        if !codes.insert(set.code.clone()) {
            return Err(format!("embedded question set {path}: duplicate code `{}`", set.code));
        }
        sets.push(set);
    }
    Ok(sets)
}

/// Parses and checks one question-set definition (format of `data/question-sets/*.toml`).
/// Errors name the question and are meant for whoever edits the file.
pub fn parse_question_set(text: &str) -> Result<QuestionSet, DomainError> {
    let set: QuestionSet = toml::from_str(text).map_err(|e| DomainError::field("question_set", e.to_string()))?;
    let mut v = Validator::new();
    v.check(is_code(&set.code), "code", "use lower_snake_case letters, digits and underscores");
    v.check(!set.name.trim().is_empty(), "name", "must not be empty");
    v.check(!set.intro.trim().is_empty(), "intro", "must not be empty");
    check_source(&mut v, "source", &set.source);
    v.check(!set.questions.is_empty(), "questions", "a question set needs at least one question");
    let mut ids = HashSet::new();
    let mut flag_codes = HashSet::new();
    for (i, q) in set.questions.iter().enumerate() {
        let at = format!("questions[{i}]");
        v.check(is_code(&q.id), &format!("{at}.id"), "use lower_snake_case letters, digits and underscores");
        v.check(ids.insert(q.id.as_str()), &format!("{at}.id"), format!("duplicate question id `{}`", q.id));
        v.check(!q.text.trim().is_empty(), &format!("{at}.text"), "must not be empty");
        if let Some(s) = &q.source {
            check_source(&mut v, &format!("{at}.source"), s);
        }
        match &q.kind {
            QuestionKind::YesNo => {}
            QuestionKind::Choice { options } => {
                v.check(options.len() >= 2, &format!("{at}.kind"), "a choice needs at least two options");
                let mut values = HashSet::new();
                for (j, o) in options.iter().enumerate() {
                    let f = format!("{at}.kind.options[{j}]");
                    v.check(is_code(&o.value), &f, "value: use lower_snake_case");
                    v.check(values.insert(o.value.as_str()), &f, format!("duplicate value `{}`", o.value));
                    v.check(!o.label.trim().is_empty(), &f, "label must not be empty");
                }
            }
            QuestionKind::Scale { min, max, min_label, max_label } => {
                v.check(min < max, &format!("{at}.kind"), "min must be below max");
                v.check(
                    !min_label.trim().is_empty() && !max_label.trim().is_empty(),
                    &format!("{at}.kind"),
                    "name both ends of the scale (min_label, max_label)",
                );
            }
            QuestionKind::FreeText { max_len } => {
                v.check(*max_len > 0, &format!("{at}.kind"), "max_len must be at least 1");
            }
        }
        if let Some(flag) = &q.flag {
            let f = format!("{at}.flag");
            v.check(is_code(&flag.code), &format!("{f}.code"), "use lower_snake_case");
            v.check(flag_codes.insert(flag.code.as_str()), &format!("{f}.code"), "duplicate flag code");
            v.check(!flag.message.trim().is_empty(), &format!("{f}.message"), "must not be empty");
            check_source(&mut v, &format!("{f}.source"), &flag.source);
            let fits = match (&q.kind, &flag.when) {
                (QuestionKind::YesNo, FlagWhen::Equals(x)) => x == "yes" || x == "no",
                (QuestionKind::Choice { options }, FlagWhen::Equals(x)) => options.iter().any(|o| &o.value == x),
                (QuestionKind::Scale { min, max, .. }, FlagWhen::AtLeast(n)) => min < n && n <= max,
                _ => false,
            };
            v.check(
                fits,
                &format!("{f}.when"),
                "yes/no: equals \"yes\" or \"no\"; choice: equals an option value; scale: at_least a value above \
                 min and at most max; free text cannot raise a flag",
            );
        }
    }
    v.finish()?;
    Ok(set)
}

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_source(v: &mut Validator, field: &str, s: &SourceRef) {
    v.check(s.section.starts_with('§'), field, "name the clinical-reference section, e.g. \"§4.3\"");
}

/// Checks a submitted form: every question id is known, every answer has the right kind and
/// range, and every required question is answered. Reports every problem at once
/// (field `answers.<question id>`).
pub fn validate_answers(set: &QuestionSet, answers: &BTreeMap<String, AnswerValue>) -> Result<(), DomainError> {
    let mut v = Validator::new();
    for id in answers.keys() {
        if set.question(id).is_none() {
            v.push(
                &format!("answers.{id}"),
                format!("unknown question `{id}` in \"{}\"; its questions are: {}", set.name, set.ids()),
            );
        }
    }
    for q in &set.questions {
        let field = format!("answers.{}", q.id);
        match answers.get(&q.id) {
            None => v.check(!q.required, &field, "this question needs an answer"),
            Some(a) => {
                if let Err(msg) = check_answer(q, a) {
                    v.push(&field, msg);
                }
            }
        }
    }
    v.finish()
}

fn check_answer(q: &Question, a: &AnswerValue) -> Result<(), String> {
    match (&q.kind, a) {
        (QuestionKind::YesNo, AnswerValue::YesNo(_)) => Ok(()),
        (QuestionKind::YesNo, _) => Err("answer yes or no (true or false)".into()),
        (QuestionKind::Choice { options }, AnswerValue::Text(t)) if options.iter().any(|o| &o.value == t) => Ok(()),
        (QuestionKind::Choice { options }, other) => {
            let values: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
            Err(format!("`{other}` is not one of the options; choose one of: {}", values.join(", ")))
        }
        (QuestionKind::Scale { min, max, .. }, AnswerValue::Number(n)) if (min..=max).contains(&n) => Ok(()),
        (QuestionKind::Scale { min, max, .. }, _) => Err(format!("answer a whole number from {min} to {max}")),
        (QuestionKind::FreeText { max_len }, AnswerValue::Text(t)) => {
            let len = t.chars().count();
            if len > *max_len {
                Err(format!("must be at most {max_len} characters (this answer has {len}); shorten it"))
            } else if q.required && t.trim().is_empty() {
                Err("this question needs an answer".into())
            } else {
                Ok(())
            }
        }
        (QuestionKind::FreeText { .. }, _) => Err("answer with text".into()),
    }
}

/// The flags raised by the answers, in question order. Answers to unknown questions, answers
/// of the wrong kind and unanswered questions raise nothing, so this also works on a partial
/// form; validate first to reject bad input.
pub fn evaluate(set: &QuestionSet, answers: &BTreeMap<String, AnswerValue>) -> Vec<QuestionSetFlag> {
    set.questions
        .iter()
        .filter_map(|q| {
            let rule = q.flag.as_ref()?;
            let answer = answers.get(&q.id)?;
            let fires = match (&q.kind, &rule.when, answer) {
                (QuestionKind::YesNo, FlagWhen::Equals(x), AnswerValue::YesNo(_))
                | (QuestionKind::Choice { .. }, FlagWhen::Equals(x), AnswerValue::Text(_)) => answer.to_string() == *x,
                (QuestionKind::Scale { .. }, FlagWhen::AtLeast(n), AnswerValue::Number(a)) => a >= n,
                _ => false,
            };
            fires.then(|| QuestionSetFlag {
                question_set: set.code.clone(),
                question: q.id.clone(),
                code: rule.code.clone(),
                severity: rule.severity,
                message: rule.message.clone(),
                source: rule.source.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkins::{FormKind, builtin_schedules};
    use crate::error::FieldError;

    fn set(code: &str) -> &'static QuestionSet {
        get(code).unwrap_or_else(|| panic!("question set {code} missing"))
    }

    fn answers(pairs: &[(&str, AnswerValue)]) -> BTreeMap<String, AnswerValue> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()
    }

    fn yes(id: &str) -> (&str, AnswerValue) {
        (id, AnswerValue::YesNo(true))
    }

    fn no(id: &str) -> (&str, AnswerValue) {
        (id, AnswerValue::YesNo(false))
    }

    fn errors(r: Result<(), DomainError>) -> Vec<FieldError> {
        match r {
            Err(DomainError::Invalid(e)) => e,
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    fn flag_codes(flags: &[QuestionSetFlag]) -> Vec<&str> {
        flags.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn catalog_loads_both_sets_with_sources() {
        let mut codes: Vec<&str> = catalog().iter().map(|s| s.code.as_str()).collect();
        codes.sort_unstable();
        assert_eq!(codes, ["after_session", "urinary_symptoms"]);
        for s in catalog() {
            assert!(s.source.section.starts_with('§'), "{}", s.code);
            for q in &s.questions {
                if let Some(f) = &q.flag {
                    assert!(
                        f.source.section.contains("§4.3"),
                        "{}.{}: flags only where §4.3 supports one",
                        s.code,
                        q.id
                    );
                    assert!(!f.source.tags.is_empty(), "{}.{}", s.code, q.id);
                }
            }
        }
    }

    #[test]
    fn every_question_set_named_by_a_checkin_schedule_exists() {
        let mut named = 0;
        for schedule in builtin_schedules() {
            for item in schedule.items.iter().filter(|i| i.kind == FormKind::QuestionSet) {
                assert!(
                    get(&item.form).is_some(),
                    "schedule {} item {} names unknown set `{}`",
                    schedule.id,
                    item.id,
                    item.form
                );
                named += 1;
            }
        }
        assert!(named >= 4, "the default schedules send after_session and urinary_symptoms on both programmes");
    }

    #[test]
    fn question_sets_have_no_suicidality_question() {
        // The suicidality check is PHQ-9 item 9 (§1.2, §4.3): its safety rule drives crisis
        // handling. A question here would collect the same answer without that path.
        for s in catalog() {
            for q in &s.questions {
                let t = q.text.to_lowercase();
                for word in ["suicid", "kill", "dead", "die", "self-harm", "hurt yourself", "hurting yourself"] {
                    assert!(!t.contains(word), "{}.{} mentions `{word}`", s.code, q.id);
                }
            }
        }
    }

    #[test]
    fn urinary_set_flags_dysuria_frequency_and_haematuria_only() {
        let s = set("urinary_symptoms");
        let all_yes = answers(&[yes("dysuria"), yes("frequency"), yes("urgency"), yes("haematuria")]);
        validate_answers(s, &all_yes).unwrap();
        let flags = evaluate(s, &all_yes);
        assert_eq!(flag_codes(&flags), ["urinary_dysuria", "urinary_frequency", "urinary_haematuria"]);
        for f in &flags {
            assert_eq!(
                (f.severity, f.question_set.as_str(), f.source.section.as_str()),
                (AlertSeverity::Warning, "urinary_symptoms", "§4.3")
            );
            assert!(f.source.note.as_deref().unwrap_or("").contains("clinic setting"), "{}", f.code);
        }
        assert_eq!(flags[2].question, "haematuria");

        let all_no = answers(&[no("dysuria"), no("frequency"), no("urgency"), no("haematuria")]);
        validate_answers(s, &all_no).unwrap();
        assert!(evaluate(s, &all_no).is_empty());
        // Urgency alone is recorded but not flagged (§4.3 names the other three).
        let urgency = answers(&[no("dysuria"), no("frequency"), yes("urgency"), no("haematuria")]);
        assert!(evaluate(s, &urgency).is_empty());
    }

    #[test]
    fn after_session_flags_only_the_urinary_question() {
        let s = set("after_session");
        let mut a = answers(&[
            ("feeling_compared_with_before", AnswerValue::Text("much_worse".into())),
            yes("nausea_or_vomiting"),
            yes("headache"),
            yes("dizziness"),
            yes("dissociation_after_session_day"),
            no("trouble_passing_urine"),
            ("other_concerns", AnswerValue::Text("Felt wobbly on the bus.".into())),
        ]);
        validate_answers(s, &a).unwrap();
        assert!(evaluate(s, &a).is_empty(), "the reference gives no flag rule for these answers");
        a.insert("trouble_passing_urine".into(), AnswerValue::YesNo(true));
        let flags = evaluate(s, &a);
        assert_eq!(flag_codes(&flags), ["after_session_urinary"]);
        assert_eq!(flags[0].source.section, "§4.3");
        // The free-text question is optional.
        a.remove("other_concerns");
        validate_answers(s, &a).unwrap();
    }

    #[test]
    fn bad_answers_are_all_reported_with_what_to_fix() {
        let s = set("after_session");
        let a = answers(&[
            ("feeling_compared_with_before", AnswerValue::Text("great".into())),
            ("headache", AnswerValue::Text("yes".into())),
            ("mood", AnswerValue::Number(3)),
            ("other_concerns", AnswerValue::Text("x".repeat(1001))),
        ]);
        let errs = errors(validate_answers(s, &a));
        let find = |f: &str| errs.iter().find(|e| e.field == f).unwrap_or_else(|| panic!("no error for {f}: {errs:?}"));
        assert!(find("answers.mood").message.contains("unknown question `mood`"));
        assert!(find("answers.mood").message.contains("trouble_passing_urine"), "lists the real ids");
        assert!(find("answers.feeling_compared_with_before").message.contains("choose one of: much_better, better"));
        assert_eq!(find("answers.headache").message, "answer yes or no (true or false)");
        assert!(find("answers.other_concerns").message.contains("at most 1000 characters (this answer has 1001)"));
        for id in ["nausea_or_vomiting", "dizziness", "dissociation_after_session_day", "trouble_passing_urine"] {
            assert_eq!(find(&format!("answers.{id}")).message, "this question needs an answer");
        }
        assert_eq!(errs.len(), 8, "{errs:?}");
    }

    #[test]
    fn a_finished_form_needs_its_required_answers_and_flags_what_it_shows() {
        let s = set("urinary_symptoms");
        let a = answers(&[yes("haematuria")]);
        let errs = errors(validate_answers(s, &a));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["answers.dysuria", "answers.frequency", "answers.urgency"]);
        // An incomplete form still raises what it already shows.
        assert_eq!(flag_codes(&evaluate(s, &a)), ["urinary_haematuria"]);
    }

    const SCALE_SET: &str = r#"
        code = "test_scale"
        name = "Test"
        intro = "Hello."
        source = { section = "§4.3", tags = ["S11"] }
        [[questions]]
        id = "pain"
        text = "How bad?"
        required = true
        kind = { type = "scale", min = 0, max = 10, min_label = "None", max_label = "Worst" }
        [questions.flag]
        code = "pain_high"
        when = { at_least = 7 }
        severity = "urgent"
        message = "High."
        source = { section = "§4.3", note = "test" }
        [[questions]]
        id = "note"
        text = "Say more"
        required = true
        kind = { type = "free_text", max_len = 5 }
    "#;

    #[test]
    fn scales_validate_their_range_and_flag_at_least() {
        let s = parse_question_set(SCALE_SET).unwrap();
        let with = |n: i32| answers(&[("pain", AnswerValue::Number(n)), ("note", AnswerValue::Text("ok".into()))]);
        assert!(evaluate(&s, &with(6)).is_empty());
        let flags = evaluate(&s, &with(7));
        assert_eq!((flags[0].code.as_str(), flags[0].severity), ("pain_high", AlertSeverity::Urgent));
        validate_answers(&s, &with(10)).unwrap();
        let errs = errors(validate_answers(&s, &with(11)));
        assert_eq!(errs[0].message, "answer a whole number from 0 to 10");
        // A required free-text answer must not be blank.
        let blank = answers(&[("pain", AnswerValue::Number(1)), ("note", AnswerValue::Text("  ".into()))]);
        assert_eq!(errors(validate_answers(&s, &blank))[0].field, "answers.note");
    }

    #[test]
    fn answers_round_trip_as_plain_json() {
        let json = r#"{"dysuria": true, "frequency": false, "urgency": false, "haematuria": true,
                       "other_bladder_concerns": "it stings"}"#;
        let a: BTreeMap<String, AnswerValue> = serde_json::from_str(json).unwrap();
        assert_eq!(a["dysuria"], AnswerValue::YesNo(true));
        assert_eq!(a["other_bladder_concerns"], AnswerValue::Text("it stings".into()));
        validate_answers(set("urinary_symptoms"), &a).unwrap();
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back["haematuria"], true);
        let flags = serde_json::to_value(evaluate(set("urinary_symptoms"), &a)).unwrap();
        assert_eq!(flags[0]["severity"], "warning");
        assert_eq!(flags[1]["code"], "urinary_haematuria");
    }

    #[test]
    fn broken_definitions_are_rejected_naming_the_question() {
        let dup = SCALE_SET.replace("id = \"note\"", "id = \"pain\"");
        assert!(parse_question_set(&dup).unwrap_err().to_string().contains("duplicate question id `pain`"));
        let out_of_range = SCALE_SET.replace("at_least = 7", "at_least = 11");
        let err = parse_question_set(&out_of_range).unwrap_err().to_string();
        assert!(err.contains("questions[0].flag.when"), "{err}");
        let bad_equals = SCALE_SET.replace("when = { at_least = 7 }", "when = { equals = \"7\" }");
        assert!(parse_question_set(&bad_equals).unwrap_err().to_string().contains("questions[0].flag.when"));
        let no_section = SCALE_SET.replace("section = \"§4.3\", note", "section = \"4.3\", note");
        assert!(parse_question_set(&no_section).unwrap_err().to_string().contains("questions[0].flag.source"));
        let yes_no_flag =
            set_text("urinary_symptoms").replacen("when = { equals = \"yes\" }", "when = { equals = \"true\" }", 1);
        assert!(parse_question_set(&yes_no_flag).is_err());
        let unknown_field = SCALE_SET.replace(
            "required = true\n        kind = { type = \"free",
            "mandatory = true\n        kind = { type = \"free",
        );
        assert!(parse_question_set(&unknown_field).is_err());
    }

    fn set_text(code: &str) -> &'static str {
        EMBEDDED.iter().find(|(p, _)| p.ends_with(&format!("/{code}.toml"))).map(|(_, t)| *t).unwrap()
    }
}
