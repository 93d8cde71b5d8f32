//! `keta score`: one questionnaire scored from the command line.

use std::io::Write;
use std::process::ExitCode;

use keta_domain::instruments;

pub fn run(code: &str, tokens: &[String]) -> ExitCode {
    let catalog = instruments::catalog();
    let Some(instrument) = catalog.get(code) else {
        let known: Vec<&str> = catalog.all().iter().map(|i| i.code.as_str()).collect();
        eprintln!("error: unknown instrument '{code}'; use one of: {}", known.join(", "));
        return ExitCode::from(2);
    };
    let mut answers = Vec::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        match instruments::parse_answer_token(instrument, i, t) {
            Ok(a) => answers.push(a),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match instruments::score(instrument, &answers) {
        Ok(score) => {
            // A closed pipe (e.g. `| head`) is not an error worth a panic.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&score).expect("scores serialise"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
