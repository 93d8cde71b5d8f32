//! `keta serve --print-config`: the effective settings, each with its origin, secrets masked.

use std::process::Command;

const TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed";
const SMTP_PASSWORD: &str = "hunter2-not-shown";

fn print_config(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keta"));
    // Only the variables this test sets.
    for (k, _) in std::env::vars() {
        if k.starts_with("KETA_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve").arg("--print-config").args(args).envs(env.iter().copied());
    let out = cmd.output().expect("run keta");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line of `key`, e.g. `bind = "127.0.0.1:9003" # flag`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} is not set")))
        .unwrap_or_else(|| panic!("no line for {key} in:\n{out}"))
}

#[test]
fn flags_beat_variables_beat_the_file_and_secrets_are_masked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keta.db");
    let file = dir.path().join("keta.toml");
    std::fs::write(
        &file,
        format!(
            "bind = \"127.0.0.1:9001\"\n\
             database_url = \"sqlite://{}\"\n\
             session_idle_minutes = 10\n\
             break_glass_minutes = 30\n\
             metrics_token = \"{TOKEN}\"\n\
             smtp_url = \"smtp://clinic:{SMTP_PASSWORD}@mail.clinic.example:25\"\n\
             mail_from = \"Clinic <reminders@clinic.example>\"\n",
            db.display()
        ),
    )
    .unwrap();
    let (code, out, err) = print_config(
        &["--config", file.to_str().unwrap(), "--bind", "127.0.0.1:9003"],
        &[("KETA_BIND", "127.0.0.1:9002"), ("KETA_SESSION_IDLE_MINUTES", "20")],
    );
    assert_eq!(code, 0, "{out}{err}");
    // Precedence: flag > env > file > default.
    assert_eq!(line(&out, "bind"), "bind = \"127.0.0.1:9003\" # flag");
    assert_eq!(line(&out, "session_idle_minutes"), "session_idle_minutes = 20 # env");
    assert_eq!(line(&out, "break_glass_minutes"), "break_glass_minutes = 30 # file");
    assert_eq!(line(&out, "request_timeout_seconds"), "request_timeout_seconds = 30 # default");
    assert_eq!(line(&out, "backup_dir"), "# backup_dir is not set # default");
    // Secrets never appear.
    assert_eq!(line(&out, "metrics_token"), "metrics_token = \"********\" # file");
    assert_eq!(line(&out, "smtp_url"), "smtp_url = \"smtp://clinic:********@mail.clinic.example:25\" # file");
    assert!(!out.contains(TOKEN) && !out.contains(SMTP_PASSWORD), "{out}");
    // The output is a settings file, and printing it opened nothing.
    let parsed: toml::Table = toml::from_str(&out).unwrap_or_else(|e| panic!("not TOML ({e}):\n{out}"));
    assert_eq!(parsed["break_glass_minutes"].as_integer(), Some(30));
    assert!(!db.exists(), "--print-config must not create the database");
}

#[test]
fn a_setting_out_of_range_is_refused_naming_it() {
    let (code, out, err) = print_config(&["--session-idle-minutes", "45"], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("session_idle_minutes 45 must be from 1 to 30"), "{err}");
}
