//! `keta checkins sweep`: one run of the check-in sweep from cron, and its refusals.

use std::process::Command;

fn keta(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keta"))
        .args(args)
        .env_remove("KETA_SMTP_URL")
        .env_remove("KETA_PUBLIC_URL")
        .output()
        .expect("run keta");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn a_sweep_runs_once_and_reports_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keta.db").display());
    let (code, out) = keta(&["checkins", "sweep", "--database-url", &url, "--public-url", "https://keta.example"]);
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON line: {out}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!((v["issued"].as_u64(), v["expired"].as_u64(), v["failed"].as_u64()), (Some(0), Some(0), Some(0)));
    assert!(v["delivery"].as_str().unwrap().contains("log only"), "{out}");
}

#[test]
fn a_public_url_without_a_scheme_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keta.db");
    let url = format!("sqlite://{}", db.display());
    let (code, out) = keta(&["checkins", "sweep", "--database-url", &url, "--public-url", "keta.example"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("must start with https://"), "{out}");
    assert!(!db.exists(), "nothing was created");
}
