//! Regimens written the way clinicians say them.
//!
//! `"0.5 mg/kg over 40 min"`, `"56 mg intranasal"`, `"35 mg bolus"`,
//! `"0.15 mg/kg/h for 60 min"`, `"25 mg sublingual at 2 h"`; several doses separated by
//! `;`, each with an optional `at MIN` offset from the start (minutes unless `h` is
//! written): `"35 mg bolus; 0.5 mg/kg over 40 min at 10"`. Decimal commas are read as
//! points; µg doses are converted to mg (÷ 1000). An intranasal dose may say how far
//! apart its devices go: `"84 mg intranasal devices 5 min apart"` (default: all at once,
//! as the model's published simulations did).
//!
//! Errors name the dose they are about and what to write instead.

use serde::Serialize;

use crate::options::AbsorptionRoute;
use crate::units::{MgPerKg, Milligrams};

/// A dose amount: fixed or per kg of body weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Amount {
    Mg(Milligrams),
    PerKg(MgPerKg),
}

impl Amount {
    /// The dose in mg for a patient of `weight_kg`.
    pub fn mg(self, weight_kg: f64) -> f64 {
        match self {
            Amount::Mg(m) => m.0,
            Amount::PerKg(m) => m.for_weight_kg(weight_kg).0,
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Mg(m) => write!(f, "{} mg", m.0),
            Amount::PerKg(m) => write!(f, "{} mg/kg", m.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Route {
    IvBolus,
    /// The amount is the total, given at a constant rate over the duration.
    IvInfusion {
        duration_min: f64,
    },
    Intramuscular,
    Oral,
    Sublingual,
    /// Esketamine nasal devices are 28 mg; `device_interval_min` apart (0: at once).
    Intranasal {
        device_interval_min: f64,
    },
}

impl Route {
    pub fn absorption(self) -> Option<AbsorptionRoute> {
        match self {
            Route::IvBolus | Route::IvInfusion { .. } => None,
            Route::Intramuscular => Some(AbsorptionRoute::Intramuscular),
            Route::Oral => Some(AbsorptionRoute::Oral),
            Route::Sublingual => Some(AbsorptionRoute::Sublingual),
            Route::Intranasal { .. } => Some(AbsorptionRoute::Intranasal),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Dose {
    /// Minutes from the start of the regimen.
    pub at_min: f64,
    pub amount: Amount,
    pub route: Route,
}

impl std::fmt::Display for Dose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.amount)?;
        match self.route {
            Route::IvBolus => write!(f, " bolus")?,
            Route::IvInfusion { duration_min } => write!(f, " over {duration_min} min")?,
            Route::Intramuscular => write!(f, " IM")?,
            Route::Oral => write!(f, " oral")?,
            Route::Sublingual => write!(f, " sublingual")?,
            Route::Intranasal { device_interval_min } => {
                write!(f, " intranasal")?;
                if device_interval_min > 0.0 {
                    write!(f, " devices {device_interval_min} min apart")?;
                }
            }
        }
        if self.at_min != 0.0 {
            write!(f, " at {}", self.at_min)?;
        }
        Ok(())
    }
}

/// Any number of doses, superposed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Regimen {
    pub doses: Vec<Dose>,
}

impl Regimen {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, dose: Dose) -> Self {
        self.doses.push(dose);
        self
    }
    pub fn bolus_mg(self, mg: f64, at_min: f64) -> Self {
        self.with(Dose { at_min, amount: Amount::Mg(Milligrams(mg)), route: Route::IvBolus })
    }
    pub fn infusion_mg(self, mg: f64, duration_min: f64, at_min: f64) -> Self {
        self.with(Dose { at_min, amount: Amount::Mg(Milligrams(mg)), route: Route::IvInfusion { duration_min } })
    }
    pub fn parse(text: &str) -> Result<Self, RegimenError> {
        let mut doses = Vec::new();
        for part in text.split([';', '\n']) {
            if part.trim().is_empty() {
                continue;
            }
            doses.push(parse_dose(part.trim())?);
        }
        if doses.is_empty() {
            return Err(RegimenError::new(
                text,
                "no dose given; write for example '0.5 mg/kg over 40 min' or '35 mg bolus'",
            ));
        }
        Ok(Self { doses })
    }
}

impl std::str::FromStr for Regimen {
    type Err = RegimenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Regimen::parse(s)
    }
}

impl std::fmt::Display for Regimen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.doses.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("in \"{dose}\": {message}")]
pub struct RegimenError {
    pub dose: String,
    pub message: String,
}

impl RegimenError {
    fn new(dose: &str, message: impl Into<String>) -> Self {
        Self { dose: dose.trim().to_string(), message: message.into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Word(String),
}

fn tokenize(dose: &str) -> Result<Vec<Token>, RegimenError> {
    // "mg / kg" → "mg/kg".
    let mut text = dose.to_lowercase();
    while text.contains(" /") || text.contains("/ ") {
        text = text.replace(" /", "/").replace("/ ", "/");
    }
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || ((chars[i] == '.' || chars[i] == ',') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect::<String>().replace(',', ".");
            let n: f64 = s
                .parse()
                .map_err(|_| RegimenError::new(dose, format!("'{s}' is not a number; write e.g. 0.5 or 35")))?;
            tokens.push(Token::Number(n));
        } else if c.is_alphabetic() || c == '/' || c == 'µ' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '/' || chars[i] == 'µ') {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == ',' {
            i += 1;
        } else {
            return Err(RegimenError::new(
                dose,
                format!("unexpected '{c}'; write a dose as a positive number and unit, e.g. '35 mg bolus'"),
            ));
        }
    }
    Ok(tokens)
}

/// A mass unit with optional "/kg" and optional "/h" or "/min".
struct DoseUnit {
    mg_factor: f64,
    per_kg: bool,
    per_min_factor: Option<f64>,
}

fn dose_unit(word: &str) -> Option<DoseUnit> {
    let mut parts = word.split('/');
    let mg_factor = match parts.next()? {
        "mg" | "milligram" | "milligrams" => 1.0,
        "mcg" | "µg" | "ug" | "microgram" | "micrograms" => 0.001,
        _ => return None,
    };
    let mut per_kg = false;
    let mut per_min_factor = None;
    for p in parts {
        match p {
            "kg" if !per_kg && per_min_factor.is_none() => per_kg = true,
            "h" | "hr" | "hour" if per_min_factor.is_none() => per_min_factor = Some(1.0 / 60.0),
            "min" | "minute" if per_min_factor.is_none() => per_min_factor = Some(1.0),
            _ => return None,
        }
    }
    Some(DoseUnit { mg_factor, per_kg, per_min_factor })
}

/// Minutes per unit of a duration word.
fn time_unit(word: &str) -> Option<f64> {
    match word {
        "min" | "mins" | "minute" | "minutes" | "m" => Some(1.0),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(60.0),
        _ => None,
    }
}

/// Words that carry no meaning for the simulation.
const FILLER: &[&str] = &[
    "of",
    "ketamine",
    "esketamine",
    "racemic",
    "dose",
    "given",
    "infusion",
    "injection",
    "spray",
    "then",
    "a",
    "an",
    "the",
    "and",
];

// Long on purpose: one phrase's grammar read left to right; every clause moves the same token cursor and fills the same
// dose.
#[allow(clippy::too_many_lines)]
fn parse_dose(dose: &str) -> Result<Dose, RegimenError> {
    let err = |m: String| RegimenError::new(dose, m);
    let tokens = tokenize(dose)?;
    let mut it = tokens.iter().peekable();

    let (value, unit) = match (it.next(), it.next()) {
        (Some(Token::Number(v)), Some(Token::Word(u))) => match dose_unit(u) {
            Some(unit) => (*v, unit),
            None => {
                return Err(err(format!(
                    "'{u}' is not a dose unit; use mg or mg/kg (or mg/h, mg/kg/h for a rate), e.g. '0.5 mg/kg over 40 min'"
                )));
            }
        },
        (Some(Token::Number(_)), _) => {
            return Err(err("the dose needs a unit: mg or mg/kg, e.g. '35 mg bolus'".into()));
        }
        _ => return Err(err("start with the dose, e.g. '35 mg bolus' or '0.5 mg/kg over 40 min'".into())),
    };
    if !(value > 0.0 && value.is_finite()) {
        return Err(err("the dose must be more than zero".into()));
    }

    let mut route: Option<(Route, &'static str)> = None;
    let mut over: Option<f64> = None;
    let mut for_: Option<f64> = None;
    let mut at: Option<f64> = None;
    let mut apart: Option<f64> = None;
    let mut explicit_iv = false;

    let duration = |it: &mut std::iter::Peekable<std::slice::Iter<'_, Token>>,
                    what: &str,
                    default_min: bool|
     -> Result<f64, RegimenError> {
        let n = match it.next() {
            Some(Token::Number(n)) => *n,
            _ => return Err(err(format!("'{what}' needs a time, e.g. '{what} 40 min'"))),
        };
        let factor = match it.peek() {
            Some(Token::Word(w)) if time_unit(w).is_some() => {
                let f = time_unit(w).unwrap_or(1.0);
                it.next();
                f
            }
            _ if default_min => 1.0,
            _ => return Err(err(format!("say the unit after '{what} {n}': min or h, e.g. '{what} {n} min'"))),
        };
        Ok(n * factor)
    };

    let mut set_route = |r: Route, word: &'static str| -> Result<(), RegimenError> {
        match route {
            Some((_, prev)) if prev != word => {
                Err(err(format!("two routes given ('{prev}' and '{word}'); give one per dose, separated by ';'")))
            }
            _ => {
                route = Some((r, word));
                Ok(())
            }
        }
    };

    while let Some(tok) = it.next() {
        let word = match tok {
            Token::Word(w) => w.as_str(),
            Token::Number(n) => {
                return Err(err(format!(
                    "unexpected number {n}; a time needs a word before it: 'over 40 min', 'at 10'"
                )));
            }
        };
        match word {
            "over" => over = Some(duration(&mut it, "over", false)?),
            "for" => for_ = Some(duration(&mut it, "for", false)?),
            "at" => at = Some(duration(&mut it, "at", true)?),
            "bolus" | "push" | "stat" => set_route(Route::IvBolus, "bolus")?,
            "iv" | "intravenous" | "intravenously" => explicit_iv = true,
            "im" | "intramuscular" | "intramuscularly" => set_route(Route::Intramuscular, "IM")?,
            "oral" | "orally" | "po" => set_route(Route::Oral, "oral")?,
            "by" if matches!(it.peek(), Some(Token::Word(w)) if w == "mouth") => {
                it.next();
                set_route(Route::Oral, "oral")?
            }
            "sublingual" | "sublingually" | "sl" => set_route(Route::Sublingual, "sublingual")?,
            "intranasal" | "intranasally" | "nasal" | "in" => {
                set_route(Route::Intranasal { device_interval_min: 0.0 }, "intranasal")?
            }
            "devices" | "device" => {}
            "apart" => return Err(err("write the device spacing as 'devices 5 min apart'".into())),
            w if FILLER.contains(&w) => {}
            w => {
                return Err(err(format!(
                    "'{w}' is not understood; say how it is given ('bolus', 'over 40 min', 'IM', 'oral', 'sublingual', 'intranasal') and optionally 'at MIN'"
                )));
            }
        }
        // "devices 5 min apart": the spacing comes as a number after "devices".
        if matches!(word, "devices" | "device") {
            let gap = duration(&mut it, "devices", true)?;
            match it.next() {
                Some(Token::Word(w)) if w == "apart" => apart = Some(gap),
                _ => return Err(err("write the device spacing as 'devices 5 min apart'".into())),
            }
        }
    }

    let is_rate = unit.per_min_factor.is_some();
    if is_rate && over.is_some() {
        return Err(err("a rate (mg/h, mg/kg/h) runs 'for' a time; a total dose runs 'over' a time".into()));
    }
    if !is_rate && for_.is_some() {
        return Err(err(
            "'for' goes with a rate such as '0.15 mg/kg/h for 60 min'; for a total dose say 'over 40 min'".into(),
        ));
    }
    if is_rate && for_.is_none() {
        return Err(err("a rate needs a duration: e.g. '0.15 mg/kg/h for 60 min'".into()));
    }
    let infusion_min = over.or(for_);
    if let Some(d) = infusion_min
        && !(d > 0.0 && d.is_finite())
    {
        return Err(err("an infusion must last more than zero minutes".into()));
    }
    let route = match (route, infusion_min) {
        (Some((Route::IvBolus, _)), Some(_)) => {
            return Err(err("a bolus is given at once; drop 'bolus' for an infusion 'over' a time".into()));
        }
        (Some((_, word)), Some(_)) => {
            return Err(err(format!("only IV doses run 'over' or 'for' a time, not {word}")));
        }
        (Some((r, word)), None) => {
            if explicit_iv && !matches!(r, Route::IvBolus) {
                return Err(err(format!("'IV' and '{word}' contradict each other")));
            }
            r
        }
        (None, Some(d)) => Route::IvInfusion { duration_min: d },
        (None, None) if explicit_iv => Route::IvBolus,
        (None, None) => {
            return Err(err(
                "say how it is given: 'bolus', 'over 40 min', 'IM', 'oral', 'sublingual' or 'intranasal'".into()
            ));
        }
    };
    let route = match (route, apart) {
        (Route::Intranasal { .. }, Some(gap)) if gap >= 0.0 => Route::Intranasal { device_interval_min: gap },
        (_, Some(_)) => return Err(err("device spacing applies to intranasal doses only".into())),
        (r, None) => r,
    };
    let at_min = at.unwrap_or(0.0);
    if !(at_min >= 0.0 && at_min.is_finite()) {
        return Err(err("'at' is minutes from the start and cannot be negative".into()));
    }

    let total = value
        * unit.mg_factor
        * infusion_min.filter(|_| is_rate).map_or(1.0, |d| d * unit.per_min_factor.unwrap_or(1.0));
    let amount = if unit.per_kg { Amount::PerKg(MgPerKg(total)) } else { Amount::Mg(Milligrams(total)) };
    Ok(Dose { at_min, amount, route })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Dose {
        let r = Regimen::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(r.doses.len(), 1);
        r.doses[0]
    }

    #[test]
    fn the_three_phrasings_from_the_issue() {
        assert_eq!(
            one("0.5 mg/kg over 40 min"),
            Dose { at_min: 0.0, amount: Amount::PerKg(MgPerKg(0.5)), route: Route::IvInfusion { duration_min: 40.0 } }
        );
        assert_eq!(
            one("56 mg intranasal"),
            Dose {
                at_min: 0.0,
                amount: Amount::Mg(Milligrams(56.0)),
                route: Route::Intranasal { device_interval_min: 0.0 }
            }
        );
        assert_eq!(
            one("35 mg bolus"),
            Dose { at_min: 0.0, amount: Amount::Mg(Milligrams(35.0)), route: Route::IvBolus }
        );
    }

    #[test]
    fn several_doses_with_offsets() {
        let r = Regimen::parse("35 mg bolus; 0.5 mg/kg over 40 min at 10").unwrap();
        assert_eq!(r.doses.len(), 2);
        assert_eq!(r.doses[1].at_min, 10.0);
        assert_eq!(r.doses[1].route, Route::IvInfusion { duration_min: 40.0 });
        let r = Regimen::parse("25 mg sublingual at 2 h; 0.5 mg/kg IM at 90 min;").unwrap();
        assert_eq!(r.doses[0].at_min, 120.0);
        assert_eq!(r.doses[1].route, Route::Intramuscular);
    }

    #[test]
    fn rates_units_and_spelling_variants() {
        let d = one("0.15 mg/kg/h for 60 min");
        assert_eq!(d.amount, Amount::PerKg(MgPerKg(0.15)));
        let d = one("500 µg/kg over 40 minutes");
        assert!(matches!(d.amount, Amount::PerKg(m) if (m.0 - 0.5).abs() < 1e-12));
        let d = one("0,5 mg / kg IV over 1 h");
        assert_eq!(d.route, Route::IvInfusion { duration_min: 60.0 });
        assert_eq!(one("35mg iv").route, Route::IvBolus);
        assert_eq!(one("100 mg by mouth").route, Route::Oral);
        assert_eq!(one("84 mg intranasal devices 5 min apart").route, Route::Intranasal { device_interval_min: 5.0 });
    }

    #[test]
    fn errors_say_what_to_fix() {
        for (text, needle) in [
            ("35 mg", "say how it is given"),
            ("35 bolus", "not a dose unit"),
            ("35", "needs a unit"),
            ("0.5 mg/kg over 40", "say the unit"),
            ("0.5 mg/kg over forty min", "needs a time"),
            ("35 mg bolus over 5 min", "a bolus is given at once"),
            ("0.15 mg/kg/h over 60 min", "'for' a time"),
            ("0.15 mg/kg/h", "a rate needs a duration"),
            ("35 mg IM oral", "two routes"),
            ("0 mg bolus", "more than zero"),
            ("35 mg bolus at -5", "unexpected '-'"),
            ("35 mg wiggly", "'wiggly' is not understood"),
            ("", "no dose given"),
            ("28 mg oral devices 5 min apart", "intranasal doses only"),
        ] {
            let e = Regimen::parse(text).expect_err(text);
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        let text = "35 mg bolus; 0.5 mg/kg over 40 min at 10; 56 mg intranasal devices 5 min apart at 60";
        let r = Regimen::parse(text).unwrap();
        assert_eq!(r.to_string(), text);
        assert_eq!(Regimen::parse(&r.to_string()).unwrap(), r);
    }
}
