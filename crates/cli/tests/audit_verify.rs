//! `keta audit verify` catches an audit row edited outside Keta (as with the sqlite3 shell).

use std::process::Command;

fn keta(args: &[&str], password: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keta"));
    cmd.args(args);
    if let Some(p) = password {
        cmd.env("KETA_NEW_PASSWORD", p);
    }
    let out = cmd.output().expect("run keta");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn a_tampered_audit_row_is_named_by_keta_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keta.db");
    let url = format!("sqlite://{}", db.display());
    let pw = Some("violet tractor umbrella 42");
    let (code, out) = keta(
        &["user", "add", "--database-url", &url, "--username", "nurse.first", "--display-name", "N", "--role", "nurse"],
        pw,
    );
    assert_ne!(code, 0, "the first account must be an administrator: {out}");
    for (user, role) in [("admin.one", "administrator"), ("dr.one", "prescriber"), ("rn.one", "nurse")] {
        let (code, out) = keta(
            &["user", "add", "--database-url", &url, "--username", user, "--display-name", user, "--role", role],
            pw,
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("TOTP key"), "{out}");
    }
    let (code, out) = keta(&["audit", "verify", "--database-url", &url], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 3 entries"), "{out}");

    // Edit entry 2 directly in the file, the way someone with the sqlite3 shell would.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET actor = 'mallory' WHERE seq = 2;")
        .unwrap();
    drop(conn);
    let (code, out) = keta(&["audit", "verify", "--database-url", &url], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at entry 2"), "{out}");

    // Deleting the row instead is caught at the entry after it.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("UPDATE audit_log SET actor = 'system' WHERE seq = 2; DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 2;").unwrap();
    drop(conn);
    let (code, out) = keta(&["audit", "verify", "--database-url", &url], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at entry 3"), "{out}");
}
