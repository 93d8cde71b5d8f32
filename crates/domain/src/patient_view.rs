//! Content for the patient's own view: the clinic's answers to common questions, and scores
//! explained in plain words.
//!
//! # FAQ
//!
//! [`faq`] loads `data/patient/faq.toml`: answers to what new patients ask (who the treatment is
//! for, what happens in a session, side effects, how long relief lasts, maintenance, why the
//! questionnaires and PHQ-9 item 9 matter, what to do in a crisis), written for the project in
//! plain language. Every entry that states a clinical fact lists the sections and `[Sx]` tags of
//! `clinical-reference.md` behind it; where the reference has no fact the text says the clinic
//! will tell the patient. The crisis line is a clinic setting shown by the page, not stored here.
//!
//! # Scores in plain words
//!
//! [`explain`] turns a total into a [`PlainExplanation`] using `data/patient/score-meanings.toml`,
//! which has words for every severity band of every patient-completed instrument (bands
//! themselves come from `data/instruments/*.toml`: PHQ-9 §1.2, GAD-7 §1.3, QIDS-SR16 §1.4) and
//! a band-free meaning where the reference defines no bands (PCL-5 §1.6, WHO-5 §1.7, pain NRS
//! §1.11). Change from the baseline ([`baseline_for`]: the course's first score, or for a
//! maintenance course the first score of the induction it continues) is worded with the rules of
//! [`crate::outcomes`] (`data/rules/outcome-definitions.toml`): whether a fall counts as a
//! response or remission is decided by [`ResponseRule::is_met`] and [`Threshold::is_met`], and
//! the threshold quoted to the patient is read from the same rule, so no number is repeated
//! here.
//!
//! Pure: both files are embedded with `include_str!` and parsed on first use; a broken file
//! panics naming the file, which this module's tests catch.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::course::Course;
use crate::error::{DomainError, Validator};
use crate::instruments::{CompletedBy, Instrument, Score, ScoringMethod, SourceRef, catalog};
use crate::outcomes::{ResponseRule, ScorePoint, Threshold, continued_course, definition_for, judged_series};
use crate::records::QuestionnaireResponse;

// ------------------------------------------------------------------------------------ FAQ

/// One answered question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaqEntry {
    /// Stable id, e.g. `side_effects`.
    pub id: String,
    pub question: String,
    /// Paragraphs, in order.
    pub answer: Vec<String>,
    /// Where the clinical facts in the answer come from; empty when it states none.
    #[serde(default)]
    pub sources: Vec<SourceRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaqFile {
    entries: Vec<FaqEntry>,
}

const FAQ: &str = include_str!("../../../data/patient/faq.toml");

/// Parses and checks a FAQ file (format of `data/patient/faq.toml`).
pub fn parse_faq(text: &str) -> Result<Vec<FaqEntry>, DomainError> {
    let file: FaqFile = toml::from_str(text).map_err(|e| DomainError::field("faq", e.to_string()))?;
    let mut v = Validator::new();
    v.check(!file.entries.is_empty(), "entries", "the FAQ needs at least one entry");
    let mut ids = HashSet::new();
    for (i, e) in file.entries.iter().enumerate() {
        let at = format!("entries[{i}]");
        v.check(is_code(&e.id), &format!("{at}.id"), "use lower_snake_case letters, digits and underscores");
        v.check(ids.insert(e.id.as_str()), &format!("{at}.id"), format!("duplicate id `{}`", e.id));
        v.check(e.question.trim().ends_with('?'), &format!("{at}.question"), "write it as a question ending in `?`");
        v.check(!e.answer.is_empty(), &format!("{at}.answer"), "needs at least one paragraph");
        for (j, p) in e.answer.iter().enumerate() {
            v.check(!p.trim().is_empty(), &format!("{at}.answer[{j}]"), "must not be empty");
        }
        for (j, s) in e.sources.iter().enumerate() {
            let f = format!("{at}.sources[{j}]");
            v.check(s.section.starts_with('§'), &f, "name the clinical-reference section, e.g. \"§5\"");
            v.check(s.tags.iter().all(|t| is_source_tag(t)), &f, "source tags look like S41 or S25b");
        }
        // A number in the answer is a clinical fact (a dose, a time, a share): it needs a source.
        let has_number = e.answer.iter().any(|p| p.chars().any(|c| c.is_ascii_digit()));
        v.check(
            !has_number || !e.sources.is_empty(),
            &format!("{at}.sources"),
            "the answer states numbers: list the clinical-reference sections they come from",
        );
    }
    v.finish()?;
    Ok(file.entries)
}

/// The clinic's answers to common questions, in display order.
///
/// # Panics
/// If the embedded `data/patient/faq.toml` is invalid — a build defect caught by the tests.
pub fn faq() -> &'static [FaqEntry] {
    static ENTRIES: OnceLock<Vec<FaqEntry>> = OnceLock::new();
    ENTRIES.get_or_init(|| parse_faq(FAQ).unwrap_or_else(|e| panic!("embedded data/patient/faq.toml is invalid: {e}")))
}

/// One FAQ entry by id (e.g. `crisis`).
pub fn faq_entry(id: &str) -> Option<&'static FaqEntry> {
    faq().iter().find(|e| e.id == id)
}

fn is_code(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_source_tag(t: &str) -> bool {
    let Some(rest) = t.strip_prefix('S') else { return false };
    let digits = rest.trim_end_matches(|c: char| c.is_ascii_lowercase());
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

// ---------------------------------------------------------------------- score meanings

/// Words for one situation: a headline and a sentence or two of detail. May contain the
/// placeholders `{total}`, `{max}` and (percentage instruments) `{percent}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Meaning {
    pub headline: String,
    pub detail: String,
}

/// Words for one severity band of an instrument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BandMeaning {
    /// The band's code in `data/instruments/<instrument>.toml`.
    pub code: String,
    pub headline: String,
    pub detail: String,
}

/// Plain-language meanings for one patient-completed instrument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstrumentMeanings {
    /// Instrument code, e.g. `phq9`.
    pub instrument: String,
    /// Finishes "…, which means …" for an improvement, e.g. "fewer depression symptoms".
    pub better_means: String,
    /// Finishes "…, which means …" for a worsening, e.g. "more depression symptoms".
    pub worse_means: String,
    /// WHO-5: higher = better well-being (§1.7). All instruments with outcome rules are
    /// higher = worse (checked at load).
    pub higher_is_better: bool,
    pub source: SourceRef,
    /// One entry per severity band of the instrument (when it has bands).
    #[serde(default)]
    pub bands: Vec<BandMeaning>,
    /// What the score means when the instrument has no bands.
    #[serde(default)]
    pub overall: Option<Meaning>,
}

/// The whole `data/patient/score-meanings.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreMeanings {
    /// Appended to every explanation's detail.
    pub reminder: String,
    pub instruments: Vec<InstrumentMeanings>,
}

impl ScoreMeanings {
    /// Meanings for an instrument code.
    pub fn get(&self, instrument_code: &str) -> Option<&InstrumentMeanings> {
        self.instruments.iter().find(|m| m.instrument == instrument_code)
    }
}

const MEANINGS: &str = include_str!("../../../data/patient/score-meanings.toml");
const PLACEHOLDERS: [&str; 3] = ["{total}", "{max}", "{percent}"];

/// Parses and checks a score-meanings file against the instrument catalog: every instrument
/// is patient-completed with a total; with bands, there are words for exactly its band codes;
/// without bands, there is an `overall` meaning; placeholders are known.
pub fn parse_score_meanings(text: &str) -> Result<ScoreMeanings, DomainError> {
    let file: ScoreMeanings = toml::from_str(text).map_err(|e| DomainError::field("score_meanings", e.to_string()))?;
    let mut v = Validator::new();
    v.check(!file.reminder.trim().is_empty(), "reminder", "must not be empty");
    let mut seen = HashSet::new();
    for (i, m) in file.instruments.iter().enumerate() {
        let at = format!("instruments[{i}]");
        v.check(seen.insert(m.instrument.as_str()), &at, format!("`{}` appears twice", m.instrument));
        v.check(m.source.section.starts_with('§'), &format!("{at}.source"), "name the clinical-reference section");
        v.check(
            !m.better_means.trim().is_empty() && !m.worse_means.trim().is_empty(),
            &at,
            "better_means and worse_means must not be empty",
        );
        let Some(inst) = catalog().get(&m.instrument) else {
            v.push(&format!("{at}.instrument"), format!("`{}` is not a known instrument", m.instrument));
            continue;
        };
        v.check(
            inst.completed_by == CompletedBy::Patient && inst.scoring != ScoringMethod::RiskCategory,
            &format!("{at}.instrument"),
            format!("{} is not a patient-completed instrument with a total", inst.short_name),
        );
        let has_rules = definition_for(&inst.code).is_some_and(|d| d.response.is_some() || d.remission.is_some());
        v.check(
            !(m.higher_is_better && has_rules),
            &format!("{at}.higher_is_better"),
            "outcome rules (data/rules/outcome-definitions.toml) treat this instrument as higher = worse",
        );
        let mut texts: Vec<(String, &str)> = Vec::new();
        if inst.bands.is_empty() {
            v.check(m.bands.is_empty(), &format!("{at}.bands"), format!("{} has no severity bands", inst.short_name));
            match &m.overall {
                Some(o) => {
                    texts.push((format!("{at}.overall.headline"), &o.headline));
                    texts.push((format!("{at}.overall.detail"), &o.detail));
                }
                None => v.push(
                    &format!("{at}.overall"),
                    format!("{} has no bands: say what its score means", inst.short_name),
                ),
            }
        } else {
            v.check(m.overall.is_none(), &format!("{at}.overall"), "use `bands`: the instrument has severity bands");
            for b in &inst.bands {
                v.check(
                    m.bands.iter().any(|w| w.code == b.code),
                    &format!("{at}.bands"),
                    format!("no words for {} band `{}` ({}–{})", inst.short_name, b.code, b.min, b.max),
                );
            }
            let mut codes = HashSet::new();
            for (j, w) in m.bands.iter().enumerate() {
                let f = format!("{at}.bands[{j}]");
                v.check(codes.insert(w.code.as_str()), &f, format!("duplicate band `{}`", w.code));
                v.check(
                    inst.bands.iter().any(|b| b.code == w.code),
                    &f,
                    format!("{} has no band `{}`", inst.short_name, w.code),
                );
                texts.push((format!("{f}.headline"), &w.headline));
                texts.push((format!("{f}.detail"), &w.detail));
            }
        }
        for (field, t) in texts {
            v.check(!t.trim().is_empty(), &field, "must not be empty");
            let rest = PLACEHOLDERS.iter().fold(t.to_string(), |s, p| s.replace(p, ""));
            v.check(!rest.contains(['{', '}']), &field, "unknown placeholder: use {total}, {max} or {percent}");
            v.check(
                !t.contains("{percent}") || inst.percentage_multiplier.is_some(),
                &field,
                format!("{} has no percentage score", inst.short_name),
            );
        }
    }
    v.finish()?;
    Ok(file)
}

/// The embedded score meanings.
///
/// # Panics
/// If `data/patient/score-meanings.toml` is invalid — a build defect caught by the tests.
pub fn score_meanings() -> &'static ScoreMeanings {
    static M: OnceLock<ScoreMeanings> = OnceLock::new();
    M.get_or_init(|| {
        parse_score_meanings(MEANINGS)
            .unwrap_or_else(|e| panic!("embedded data/patient/score-meanings.toml is invalid: {e}"))
    })
}

/// A score explained to the patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlainExplanation {
    /// E.g. "Your answers suggest moderate depression symptoms."
    pub headline: String,
    /// The score out of its maximum, what the range means, and the reminder.
    pub detail: String,
    /// Change from the first score, when a baseline is given, e.g. "That is 52 % lower than
    /// your first score of 21 — what your clinic counts as a response."
    pub change: Option<String>,
}

/// Explains `total` on an instrument in plain words, and its change from `baseline` (the
/// patient's first score in the course) when given.
///
/// `severity_band_code` is the band the scorer reported (`Score::severity`); it must be the band
/// that contains `total`, and must be `None` for instruments without bands. When `None` for an
/// instrument with bands, the band is looked up from the total.
///
/// Errors name the field: `instrument` (unknown, or no plain-language meanings), `total` and
/// `baseline` (outside the instrument's range), `severity_band_code` (not the total's band).
pub fn explain(
    instrument_code: &str,
    total: i32,
    severity_band_code: Option<&str>,
    baseline: Option<i32>,
) -> Result<PlainExplanation, DomainError> {
    let inst = catalog()
        .get(instrument_code)
        .ok_or_else(|| DomainError::field("instrument", format!("unknown instrument `{instrument_code}`")))?;
    let meanings = score_meanings();
    let m = meanings.get(&inst.code).ok_or_else(|| {
        let known: Vec<&str> = meanings.instruments.iter().map(|m| m.instrument.as_str()).collect();
        DomainError::field(
            "instrument",
            format!("{} has no plain-language meanings; these do: {}", inst.short_name, known.join(", ")),
        )
    })?;
    // Checked at load: instruments with meanings have a total range.
    let (lo, hi) = (inst.min_total.unwrap_or(0), inst.max_total.unwrap_or(0));
    let mut v = Validator::new();
    v.check((lo..=hi).contains(&total), "total", format!("must be {lo}-{hi} for {}", inst.short_name));
    if let Some(b) = baseline {
        v.check((lo..=hi).contains(&b), "baseline", format!("must be {lo}-{hi} for {}", inst.short_name));
    }
    v.finish()?;

    let meaning = match (inst.band_for(total), severity_band_code) {
        (None, Some(code)) => {
            return Err(DomainError::field(
                "severity_band_code",
                format!("{} has no severity bands; leave it empty (got `{code}`)", inst.short_name),
            ));
        }
        (Some(band), Some(code)) if band.code != code => {
            return Err(DomainError::field(
                "severity_band_code",
                format!("a {} total of {total} is in band `{}`, not `{code}`", inst.short_name, band.code),
            ));
        }
        (Some(band), _) => {
            let w = m.bands.iter().find(|w| w.code == band.code).expect("every band has words (checked at load)");
            Meaning { headline: w.headline.clone(), detail: w.detail.clone() }
        }
        (None, None) => m.overall.clone().expect("band-free instruments have an overall meaning (checked at load)"),
    };
    let fill = |s: &str| {
        s.replace("{total}", &total.to_string())
            .replace("{max}", &hi.to_string())
            .replace("{percent}", &(total * inst.percentage_multiplier.unwrap_or(1)).to_string())
    };
    Ok(PlainExplanation {
        headline: fill(&meaning.headline),
        detail: format!("{} {}", fill(&meaning.detail), meanings.reminder),
        change: baseline.map(|b| describe_change(inst, m, total, b)),
    })
}

/// [`explain`] for a scored form (uses its total and band).
pub fn explain_score(score: &Score, baseline: Option<i32>) -> Result<PlainExplanation, DomainError> {
    let total = score
        .total
        .ok_or_else(|| DomainError::field("total", format!("`{}` has no total score to explain", score.instrument)))?;
    explain(&score.instrument, total, score.severity.as_ref().map(|b| b.code.as_str()), baseline)
}

fn points(n: i32) -> String {
    if n == 1 { "1 point".into() } else { format!("{n} points") }
}

/// "That is 52 % lower than your first score of 21 — what your clinic counts as a response."
///
/// Improvements under a percent-based response rule are shown as a percentage of the first
/// score, rounded down (so the shown figure never overstates the fall and agrees with
/// [`ResponseRule::is_met`]); everything else in points, on the percentage scale for WHO-5.
fn describe_change(inst: &Instrument, m: &InstrumentMeanings, total: i32, baseline: i32) -> String {
    let scale = inst.percentage_multiplier.unwrap_or(1);
    let (now, first) = (total * scale, baseline * scale);
    if now == first {
        return format!("That is the same as your first score of {first}.");
    }
    let improved = if m.higher_is_better { now > first } else { now < first };
    let direction = if now < first { "lower" } else { "higher" };
    let diff = (now - first).abs();
    let def = definition_for(&inst.code);
    let response = def.and_then(|d| d.response.as_ref()).map(|r| r.rule);
    let remission = def.and_then(|d| d.remission.as_ref()).map(|r| r.threshold);

    if !improved {
        return format!(
            "That is {} {direction} than your first score of {first}, which means {}. Please tell your care team how \
             you are feeling.",
            points(diff),
            m.worse_means
        );
    }
    let amount = match response {
        Some(ResponseRule::PercentReduction { .. }) if first > 0 => {
            format!("{} %", i64::from(diff) * 100 / i64::from(first))
        }
        _ => points(diff),
    };
    let mut s = format!("That is {amount} {direction} than your first score of {first}");
    match response.map(|r| (r, r.is_met(baseline, total))) {
        Some((_, Some(true))) => s.push_str(" — what your clinic counts as a response."),
        Some((rule, _)) => {
            let needed = match rule {
                ResponseRule::PercentReduction { min_percent } => format!("{min_percent} %"),
                ResponseRule::PointReduction { min_points } => points(min_points),
            };
            s.push_str(&format!(
                ", which means {}. Your clinic counts a fall of {needed} or more from your first score as a response.",
                m.better_means
            ));
        }
        None => s.push_str(&format!(", which means {}.", m.better_means)),
    }
    if remission.is_some_and(|t: Threshold| t.is_met(total)) {
        s.push_str(" It is also low enough to be what your clinic counts as remission (very few symptoms).");
    }
    s
}

/// The score a response's change is explained against on the patient's page: the baseline its
/// course is judged on ([`crate::outcomes::judged_series`], so for a maintenance course the
/// first score of the induction it continues, as the chart and the outcomes table judge it),
/// when the response came after that baseline. A response linked to no course is compared with
/// the patient's first earlier score on the same instrument. `None` for the baseline itself.
pub fn baseline_for(courses: &[Course], responses: &[QuestionnaireResponse], r: &QuestionnaireResponse) -> Option<i32> {
    let baseline = match r.course_id {
        Some(id) => {
            let course = courses.iter().find(|c| c.id == id)?;
            judged_series(course, continued_course(courses, course), responses, &r.instrument)?.baseline()
        }
        None => responses
            .iter()
            .filter(|o| o.instrument == r.instrument)
            .filter_map(|o| o.score.total.map(|total| ScorePoint { at: o.completed_at, total }))
            .min_by_key(|p| p.at)?,
    };
    (baseline.at < r.completed_at).then_some(baseline.total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::score;

    fn err_fields(r: Result<PlainExplanation, DomainError>) -> Vec<(String, String)> {
        match r {
            Err(DomainError::Invalid(e)) => e.into_iter().map(|e| (e.field, e.message)).collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    // ------------------------------------------------------------------ FAQ

    #[test]
    fn faq_parses_and_every_entry_has_text() {
        let entries = faq();
        assert!(entries.len() >= 7);
        for e in entries {
            assert!(!e.question.trim().is_empty() && e.question.ends_with('?'), "{}", e.id);
            assert!(!e.answer.is_empty() && e.answer.iter().all(|p| p.split_whitespace().count() >= 3), "{}", e.id);
            // Second person: the answers talk to the patient.
            let text = e.answer.join(" ").to_lowercase();
            assert!(text.contains("you"), "{} is not written to the patient", e.id);
            for s in &e.sources {
                assert!(
                    s.note.as_deref().is_some_and(|n| !n.is_empty()),
                    "{}: say which statement {} supports",
                    e.id,
                    s
                );
            }
        }
    }

    #[test]
    fn faq_sentences_stay_short() {
        // Reading age about 12: short sentences. A crude guard, not a readability formula.
        let sentences: Vec<usize> = faq()
            .iter()
            .flat_map(|e| e.answer.iter())
            .flat_map(|p| p.split_inclusive(['.', '?', '!']).map(|s| s.split_whitespace().count()))
            .filter(|&n| n > 0)
            .collect();
        let longest = sentences.iter().copied().max().unwrap_or(0);
        let mean = sentences.iter().sum::<usize>() as f64 / sentences.len() as f64;
        assert!(longest <= 35, "a sentence has {longest} words; split it");
        assert!(mean <= 16.0, "sentences average {mean:.1} words; aim for 16 or fewer");
    }

    #[test]
    fn faq_covers_the_topics_new_patients_ask_about() {
        for id in [
            "who_is_it_for",
            "what_happens_in_a_session",
            "side_effects",
            "how_long_relief_lasts",
            "maintenance",
            "questionnaires",
            "crisis",
        ] {
            let e = faq_entry(id).unwrap_or_else(|| panic!("FAQ entry `{id}` missing"));
            if id != "crisis" {
                assert!(!e.sources.is_empty(), "{id} states clinical facts: it needs sources");
            }
        }
        // Durability figures come from §5 [S41][S39][S49].
        let durability = faq_entry("how_long_relief_lasts").unwrap();
        let tags: Vec<&str> = durability.sources.iter().flat_map(|s| s.tags.iter().map(String::as_str)).collect();
        for t in ["S41", "S39", "S49"] {
            assert!(tags.contains(&t), "missing [{t}]");
        }
        let text = durability.answer.join(" ");
        assert!(text.contains("18 days") && text.contains("8 in 10") && text.contains("6 in 10"), "{text}");
        // Item 9 and the crisis line: tell us, we contact you; in an emergency call the line shown.
        let q = faq_entry("questionnaires").unwrap().answer.join(" ");
        assert!(
            q.contains("Question 9")
                && q.contains("same day")
                && q.contains("crisis line given on every check-in page")
        );
        assert!(faq_entry("questionnaires").unwrap().sources.iter().any(|s| s.section == "§1.2"));
        let crisis = faq_entry("crisis").unwrap().answer.join(" ");
        assert!(crisis.contains("emergency number") && crisis.contains("crisis line given on every check-in page"));
        // Side effects named in the brief, and the no-driving rule.
        let se = faq_entry("side_effects").unwrap().answer.join(" ").to_lowercase();
        for w in ["disconnected", "blood pressure", "sick", "sleepy", "drive", "bladder"] {
            assert!(se.contains(w), "side effects must mention {w}");
        }
    }

    #[test]
    fn faq_files_are_checked() {
        let dup = r#"
            [[entries]]
            id = "a"
            question = "Why?"
            answer = ["Because you asked."]
            [[entries]]
            id = "a"
            question = "No question mark"
            answer = ["It lasts 18 days for you."]
        "#;
        let err = parse_faq(dup).unwrap_err().to_string();
        assert!(err.contains("duplicate id `a`"), "{err}");
        assert!(err.contains("ending in `?`"), "{err}");
        assert!(err.contains("states numbers"), "{err}");
        let bad_source = r#"
            [[entries]]
            id = "a"
            question = "Why?"
            answer = [""]
            sources = [{ section = "5", tags = ["X1"] }]
        "#;
        let err = parse_faq(bad_source).unwrap_err().to_string();
        assert!(err.contains("answer[0]") && err.contains("section") && err.contains("S41"), "{err}");
        assert!(is_source_tag("S25b") && is_source_tag("S7") && !is_source_tag("S") && !is_source_tag("Sx"));
    }

    // ------------------------------------------------------------ score meanings

    /// Patient-completed instruments with a total: the ones the patient's view shows.
    fn patient_instruments() -> impl Iterator<Item = &'static Instrument> {
        catalog()
            .all()
            .iter()
            .filter(|i| i.completed_by == CompletedBy::Patient && i.scoring != ScoringMethod::RiskCategory)
    }

    #[test]
    fn every_band_of_every_patient_instrument_has_words() {
        let mut checked = 0;
        for inst in patient_instruments() {
            let m = score_meanings().get(&inst.code).unwrap_or_else(|| panic!("no meanings for {}", inst.code));
            for band in &inst.bands {
                assert!(m.bands.iter().any(|w| w.code == band.code), "{} band {} has no words", inst.code, band.code);
                for total in [band.min, band.max] {
                    let e = explain(&inst.code, total, Some(&band.code), None).unwrap();
                    assert!(!e.headline.contains('{') && !e.detail.contains('{'), "{e:?}");
                    assert!(e.detail.contains(&format!("{total} out of")), "{}: {e:?}", inst.code);
                    checked += 1;
                }
            }
            if inst.bands.is_empty() {
                let e = explain(&inst.code, inst.max_total.unwrap(), None, None).unwrap();
                assert!(!e.headline.contains('{'), "{e:?}");
            }
        }
        assert_eq!(checked, 2 * (5 + 4 + 5), "PHQ-9, GAD-7 and QIDS-SR16 bands, both ends");
        let mut codes: Vec<&str> = patient_instruments().map(|i| i.code.as_str()).collect();
        codes.sort_unstable();
        assert_eq!(codes, ["gad7", "pain_nrs", "pcl5", "phq9", "qids_sr16", "who5"]);
    }

    #[test]
    fn a_band_without_words_fails_to_load() {
        let without = MEANINGS.replacen("code = \"moderately_severe\"", "code = \"moderately_bad\"", 1);
        let err = parse_score_meanings(&without).unwrap_err().to_string();
        assert!(err.contains("no words for PHQ-9 band `moderately_severe` (15–19)"), "{err}");
        assert!(err.contains("PHQ-9 has no band `moderately_bad`"), "{err}");
        let bad_placeholder = MEANINGS.replacen("{total} out of {max}", "{score} out of {max}", 1);
        assert!(parse_score_meanings(&bad_placeholder).unwrap_err().to_string().contains("unknown placeholder"));
        let percent_on_phq = MEANINGS.replacen("{total} out of {max}", "{percent} out of 100", 1);
        assert!(parse_score_meanings(&percent_on_phq).unwrap_err().to_string().contains("no percentage score"));
        let upside_down = MEANINGS.replacen("higher_is_better = false", "higher_is_better = true", 1);
        assert!(parse_score_meanings(&upside_down).unwrap_err().to_string().contains("higher = worse"));
    }

    #[test]
    fn phq9_worked_examples() {
        // 21 → 10: a 52 % fall (11/21 = 52.4 %), a response; 10 is still moderate, not remission.
        let e = explain("phq9", 10, Some("moderate"), Some(21)).unwrap();
        assert_eq!(e.headline, "Your answers suggest moderate depression symptoms.");
        assert!(e.detail.starts_with("Your score is 10 out of 27. That is in the moderate range on the PHQ-9."));
        assert!(e.detail.ends_with("how you are doing."), "reminder appended");
        assert_eq!(
            e.change.as_deref(),
            Some("That is 52 % lower than your first score of 21 — what your clinic counts as a response.")
        );

        // 20 → 11: 45 % lower, not yet a response; the needed fall comes from the outcome rule.
        let e = explain("phq9", 11, None, Some(20)).unwrap();
        assert_eq!(
            e.change.as_deref(),
            Some(
                "That is 45 % lower than your first score of 20, which means fewer depression symptoms. Your clinic \
                 counts a fall of 50 % or more from your first score as a response."
            )
        );

        // 18 → 4: response and remission (PHQ-9 < 5).
        let e = explain("phq9", 4, Some("none_minimal"), Some(18)).unwrap();
        assert_eq!(e.headline, "Your answers suggest no or very few depression symptoms.");
        let change = e.change.unwrap();
        assert!(change.starts_with("That is 77 % lower") && change.contains("counts as a response"), "{change}");
        assert!(change.contains("remission"), "{change}");
        // 18 → 5: response, but 5 is not below 5: no remission.
        assert!(!explain("phq9", 5, None, Some(18)).unwrap().change.unwrap().contains("remission"));

        // Worse than baseline.
        let e = explain("phq9", 16, Some("moderately_severe"), Some(12)).unwrap();
        assert_eq!(
            e.change.as_deref(),
            Some(
                "That is 4 points higher than your first score of 12, which means more depression symptoms. Please \
                 tell your care team how you are feeling."
            )
        );
        assert_eq!(
            explain("phq9", 12, None, Some(12)).unwrap().change.as_deref(),
            Some("That is the same as your first score of 12.")
        );
        assert_eq!(explain("phq9", 12, None, None).unwrap().change, None);
    }

    #[test]
    fn percentages_agree_with_the_response_rule_at_the_boundary() {
        // 20 → 10 is exactly 50 %: a response. 15 → 8 is 46.7 %: shown rounded down, not a response.
        let e = explain("phq9", 10, None, Some(20)).unwrap().change.unwrap();
        assert!(e.starts_with("That is 50 % lower") && e.contains("counts as a response"), "{e}");
        let e = explain("phq9", 8, None, Some(15)).unwrap().change.unwrap();
        assert!(e.starts_with("That is 46 % lower") && e.contains("a fall of 50 % or more"), "{e}");
        // GAD-7 follows its own rule: 16 → 8 is a response, 8 is mild, not remission (< 5).
        let e = explain("gad7", 8, Some("mild"), Some(16)).unwrap();
        assert_eq!(e.headline, "Your answers suggest mild anxiety symptoms.");
        let c = e.change.unwrap();
        assert!(c.contains("50 % lower") && c.contains("response") && !c.contains("remission"), "{c}");
        // QIDS-SR16 remission is "at most 5" (§1.4): 5 counts.
        let c = explain("qids_sr16", 5, Some("none"), Some(16)).unwrap().change.unwrap();
        assert!(c.contains("remission"), "{c}");
    }

    #[test]
    fn instruments_without_bands_or_rules() {
        // WHO-5: shown on the 0-100 scale; higher is better; no outcome rules.
        let e = explain("who5", 13, None, Some(10)).unwrap();
        assert_eq!(e.headline, "Your well-being score is 52 out of 100.");
        assert_eq!(
            e.change.as_deref(),
            Some("That is 12 points higher than your first score of 40, which means better well-being.")
        );
        let worse = explain("who5", 9, None, Some(10)).unwrap().change.unwrap();
        assert!(worse.starts_with("That is 4 points lower") && worse.contains("lower well-being"), "{worse}");
        // PCL-5: change only, in points (no response rule in the reference).
        let e = explain("pcl5", 30, None, Some(50)).unwrap();
        assert_eq!(e.headline, "Your PTSD checklist (PCL-5) score is 30 out of 80.");
        assert!(e.detail.contains("no official severity ranges"));
        assert_eq!(
            e.change.as_deref(),
            Some(
                "That is 20 points lower than your first score of 50, which means you are less bothered by stress symptoms."
            )
        );
        let c = explain("pain_nrs", 6, None, Some(7)).unwrap().change.unwrap();
        assert_eq!(c, "That is 1 point lower than your first score of 7, which means less pain.");
    }

    #[test]
    fn bad_requests_name_the_field() {
        assert_eq!(err_fields(explain("phq10", 3, None, None))[0].0, "instrument");
        let e = err_fields(explain("madrs", 3, None, None));
        assert!(e[0].0 == "instrument" && e[0].1.contains("MADRS has no plain-language meanings"), "{e:?}");
        let e = err_fields(explain("phq9", 28, None, Some(-1)));
        assert_eq!(
            e,
            [
                ("total".to_string(), "must be 0-27 for PHQ-9".to_string()),
                ("baseline".to_string(), "must be 0-27 for PHQ-9".to_string())
            ]
        );
        let e = err_fields(explain("phq9", 12, Some("mild"), None));
        assert_eq!(e[0].1, "a PHQ-9 total of 12 is in band `moderate`, not `mild`");
        let e = err_fields(explain("pcl5", 12, Some("mild"), None));
        assert!(e[0].0 == "severity_band_code" && e[0].1.contains("no severity bands"), "{e:?}");
    }

    #[test]
    fn explain_score_uses_the_scored_band() {
        let phq9 = catalog().get("phq9").unwrap();
        let s = score(phq9, &[2, 2, 2, 1, 1, 1, 1, 1, 0].map(Some)).unwrap();
        assert_eq!(s.total, Some(11));
        let e = explain_score(&s, Some(22)).unwrap();
        assert_eq!(e.headline, "Your answers suggest moderate depression symptoms.");
        assert!(e.change.unwrap().contains("50 % lower"));
        let cssrs = catalog().get("cssrs_screen").unwrap();
        let s = score(cssrs, &[Some(0), Some(0), None, None, None, Some(0)]).unwrap();
        assert_eq!(err_fields(explain_score(&s, None))[0].0, "total");
        let e = serde_json::to_value(explain("phq9", 3, None, None).unwrap()).unwrap();
        assert!(e["change"].is_null() && e["headline"].is_string());
    }
}
