//! Observability: the request id (header, problem+json, audit entry), `/metrics` (content,
//! who may read it, no patient data), liveness and readiness, and the live board's reconnect
//! hint when a server begins to shut down. On both backends.

use std::sync::Arc;

use keta_domain::access::Role;
use keta_testkit::{ManualClock, StaffLogin, TestApp, TestDb, seed_staff, spawn_app_with_state};
use keta_web::observe::Observability;
use keta_web::serving::TrustedProxies;
use serde_json::{Value, json};

use crate::fixtures::*;

const FAMILY: &str = "Quorrindale";
const MRN: &str = "OBS-77123";
const TOKEN: &str = "0123456789abcdef0123456789abcdef-metrics";

struct World {
    app: TestApp,
    db: TestDb,
    clock: ManualClock,
    staff: Vec<StaffLogin>,
    site: i64,
    observe: Arc<Observability>,
}

/// A server behind a trusted proxy (127.0.0.1) with a metrics token.
async fn world(db: TestDb, clock: ManualClock) -> World {
    let a = site(&db.store, "OBS").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let mut o = Observability::new(db.store.clone());
    o.metrics_token = Some(TOKEN.into());
    let state = keta_web::AppState::new(db.store.clone())
        .with_trusted_proxies(TrustedProxies::parse("127.0.0.1").unwrap())
        .with_observability(o);
    let observe = state.observe.clone();
    let app = spawn_app_with_state(state).await;
    World { app, db, clock, staff, site: a.0, observe }
}

async fn worlds() -> Vec<World> {
    let clock = ManualClock::at(T0);
    let mut out = Vec::new();
    for db in TestDb::all(&clock).await {
        out.push(world(db, ManualClock::at(T0)).await);
    }
    out
}

fn who(w: &World, role: Role) -> &StaffLogin {
    w.staff.iter().find(|s| s.role == role).unwrap()
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers().get("x-request-id").expect("an X-Request-Id header").to_str().unwrap().to_string()
}

async fn audit_request_ids(w: &World, object_type: &str, action: &str) -> Vec<Option<String>> {
    let (t, a) = (object_type.to_string(), action.to_string());
    keta_store::testing::read(&w.db.store, move |c| {
        c.query(
            "SELECT request_id FROM audit_log WHERE object_type = $1 AND action = $2 ORDER BY seq",
            keta_store::params![t, a],
        )?
        .iter()
        .map(|r| r.opt_text("request_id"))
        .collect()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn every_answer_names_its_request_and_the_audit_entry_carries_it() {
    for w in worlds().await {
        // Every response has an id; two requests get different ones.
        let (a, b) = (w.app.get("/livez").await, w.app.get("/livez").await);
        assert_eq!(a.status(), 200);
        assert_ne!(request_id(&a), request_id(&b));
        assert_eq!(request_id(&a).len(), 32);

        // A problem carries the same id as its header: from a handler (422) and from the
        // framework (404 for an unknown route).
        assert_eq!(w.app.login(who(&w, Role::FrontDesk), w.clock.now()).await.status(), 200);
        let r = w.app.post_json("/api/v1/patients", &json!({"site_id": w.site, "mrn": ""})).await;
        assert_eq!(r.status(), 422);
        let id = request_id(&r);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["request_id"], id, "{p}");
        let r = w.app.get("/api/v1/no-such-thing").await;
        let id = request_id(&r);
        let p: Value = r.json().await.unwrap();
        assert_eq!((p["status"].as_u64(), p["request_id"].as_str()), (Some(404), Some(id.as_str())), "{p}");

        // A trusted proxy's id is kept; anyone else's is replaced, as is one that is not sane.
        let proxied = |id: &str| {
            w.app
                .request(reqwest::Method::GET, "/livez")
                .header("x-request-id", id)
                .header("x-forwarded-for", "10.1.2.3")
        };
        let r = proxied("lb-7f3a9c.0001").send().await.unwrap();
        assert_eq!(request_id(&r), "lb-7f3a9c.0001");
        let r = proxied("bad id; <script>").send().await.unwrap();
        assert_ne!(request_id(&r), "bad id; <script>");
        assert_eq!(request_id(&r).len(), 32);

        // A write's audit entry and an audited read's entry carry their request's id.
        let body = json!({
            "site_id": w.site, "mrn": MRN, "given_name": "Ilse", "family_name": FAMILY, "date_of_birth": "1980-02-03",
            "sex": "female", "indication": "depression", "diagnoses": ["F33.2"]
        });
        let r =
            w.app.request(reqwest::Method::POST, "/api/v1/patients").json(&body).header("x-request-id", "write-0001");
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(request_id(&r), "write-0001", "the test client is on loopback, the trusted proxy");
        let patient = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        assert_eq!(audit_request_ids(&w, "patient", "create").await, vec![Some("write-0001".to_string())]);
        let r = w.app.get(&format!("/api/v1/patients/{patient}")).await;
        assert_eq!(r.status(), 200);
        let read_id = request_id(&r);
        let reads = audit_request_ids(&w, "patient", "read").await;
        assert_eq!(reads.last(), Some(&Some(read_id)), "{reads:?}");

        // The request id is inside the hash: the chain verifies with it, on both backends.
        let (n, broken) = w.db.store.verify_audit_chain().await.unwrap();
        assert!(broken.is_none(), "{broken:?}");
        assert!(n >= 3);
        // The auditor's report shows it.
        assert_eq!(w.app.login(who(&w, Role::Auditor), w.clock.now()).await.status(), 200);
        let log: Value = w.app.get(&format!("/api/v1/patients/{patient}/access-log")).await.json().await.unwrap();
        assert!(log.as_array().unwrap().iter().any(|e| e["request_id"] == "write-0001"), "{log}");
    }
}

#[tokio::test]
async fn an_edited_request_id_breaks_the_chain() {
    for w in worlds().await {
        assert_eq!(w.app.login(who(&w, Role::FrontDesk), w.clock.now()).await.status(), 200);
        let body = json!({
            "site_id": w.site, "mrn": MRN, "given_name": "Ilse", "family_name": FAMILY, "date_of_birth": "1980-02-03",
            "sex": "female", "indication": "depression", "diagnoses": ["F33.2"]
        });
        let r = w.app.request(reqwest::Method::POST, "/api/v1/patients").json(&body).header("x-request-id", "edit-me");
        assert_eq!(r.send().await.unwrap().status(), 201);
        w.db.store.seal_audit_chain().await.unwrap();
        let edit = match w.db.kind {
            keta_testkit::Kind::Sqlite => {
                "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET request_id = 'forged' WHERE request_id = 'edit-me'"
            }
            keta_testkit::Kind::Postgres => {
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update; UPDATE audit_log SET request_id = 'forged' WHERE request_id = 'edit-me'"
            }
        };
        keta_store::testing::write(&w.db.store, move |c| {
            for sql in edit.split("; ") {
                c.execute(sql, &[])?;
            }
            Ok(())
        })
        .await
        .unwrap();
        let (_, broken) = w.db.store.verify_audit_chain().await.unwrap();
        assert!(broken.is_some(), "an edited request id must break the chain");
    }
}

#[tokio::test]
async fn metrics_hold_the_figures_and_no_patient_data() {
    for w in worlds().await {
        assert_eq!(w.app.login(who(&w, Role::FrontDesk), w.clock.now()).await.status(), 200);
        let body = json!({
            "site_id": w.site, "mrn": MRN, "given_name": "Ilse", "family_name": FAMILY, "date_of_birth": "1980-02-03",
            "sex": "female", "indication": "depression", "diagnoses": ["F33.2"]
        });
        let r = w.app.post_json("/api/v1/patients", &body).await;
        assert_eq!(r.status(), 201);
        let patient = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        assert_eq!(w.app.get(&format!("/api/v1/patients/{patient}")).await.status(), 200);
        assert_eq!(w.app.get(&format!("/api/v1/patients?search={FAMILY}")).await.status(), 200);

        let r = w.app.client.get(w.app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200, "loopback may read the metrics");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = r.text().await.unwrap();
        for want in [
            "# TYPE keta_http_request_duration_seconds histogram",
            "keta_http_request_duration_seconds_bucket{route=\"/api/v1/patients\",method=\"POST\",status_class=\"2xx\",le=\"0.1\"}",
            "keta_http_request_duration_seconds_count{route=\"/api/v1/patients/{id}\",method=\"GET\",status_class=\"2xx\"} 1",
            "keta_db_pool_in_use ",
            "keta_db_pool_size ",
            "keta_sse_clients ",
            "keta_alerts_raised_total ",
            "keta_checkins_sent_total ",
        ] {
            assert!(text.contains(want), "missing {want} in:\n{text}");
        }
        if w.db.kind == keta_testkit::Kind::Sqlite {
            assert!(text.contains("keta_sqlite_writer_queue_depth "), "{text}");
            assert!(text.contains("# TYPE keta_sqlite_write_batch_size histogram"), "{text}");
            assert!(text.contains("keta_sqlite_write_batch_size_bucket{le=\"+Inf\"}"), "{text}");
        }
        for secret in [FAMILY, MRN, "Ilse", &format!("/patients/{patient}"), "search="] {
            assert!(!text.contains(secret), "patient data ({secret}) in /metrics");
        }

        // From another machine (the trusted proxy names the client): only with the token.
        let remote = || w.app.client.get(w.app.url("/metrics")).header("x-forwarded-for", "203.0.113.9");
        assert_eq!(remote().send().await.unwrap().status(), 404);
        let wrong = remote().bearer_auth("0123456789abcdef0123456789abcdef-metricz").send().await.unwrap();
        assert_eq!(wrong.status(), 404);
        assert_eq!(remote().bearer_auth(TOKEN).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn readiness_fails_while_migrating_and_shutting_down_and_liveness_does_not() {
    for w in worlds().await {
        let ready = |w: &World| {
            let url = w.app.url("/readyz");
            let c = w.app.client.clone();
            async move {
                let r = c.get(url).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (s, b) = ready(&w).await;
        assert_eq!((s, b["status"].as_str()), (200, Some("ready")), "{b}");

        // The database's schema is older than this server's: not ready until migrated.
        let latest = keta_store::latest_version();
        keta_store::testing::write(&w.db.store, move |c| {
            c.execute("DELETE FROM schema_migrations WHERE version = $1", keta_store::params![latest])
        })
        .await
        .unwrap();
        let (s, b) = ready(&w).await;
        assert_eq!((s, b["reason"].as_str()), (503, Some("migrating")), "{b}");
        assert_eq!(w.app.get("/livez").await.status(), 200);
        keta_store::testing::write(&w.db.store, move |c| {
            c.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, 'audit_request_id')",
                keta_store::params![latest],
            )
        })
        .await
        .unwrap();
        assert_eq!(ready(&w).await.0, 200);

        if w.db.kind == keta_testkit::Kind::Postgres {
            // Another server holds the migration lock: every server waits.
            let url = w.db.url.clone();
            let (hold, release) = std::sync::mpsc::channel::<()>();
            let (held, is_held) = std::sync::mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                c.execute("SELECT pg_advisory_lock(4242001)", &[]).unwrap();
                held.send(()).unwrap();
                let _ = release.recv();
                c.execute("SELECT pg_advisory_unlock(4242001)", &[]).unwrap();
            });
            is_held.recv().unwrap();
            let (s, b) = ready(&w).await;
            assert_eq!((s, b["reason"].as_str()), (503, Some("migrating")), "{b}");
            hold.send(()).unwrap();
            holder.join().unwrap();
            assert_eq!(ready(&w).await.0, 200);

            // The database refuses connections: not ready, still alive; back once it returns.
            let name = w.db.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
            let admin = keta_testkit::postgres_url().unwrap();
            let set = move |allow: bool| {
                let (admin, name) = (admin.clone(), name.clone());
                std::thread::spawn(move || {
                    let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
                    c.batch_execute(&format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}")).unwrap();
                    if !allow {
                        c.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                            &[&name],
                        )
                        .unwrap();
                    }
                })
                .join()
                .unwrap();
            };
            set(false);
            let (s, b) = ready(&w).await;
            assert_eq!((s, b["reason"].as_str()), (503, Some("database_unreachable")), "{b}");
            assert_eq!(w.app.get("/livez").await.status(), 200);
            set(true);
            let mut back = false;
            for _ in 0..50 {
                if ready(&w).await.0 == 200 {
                    back = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert!(back, "readiness returns once the database answers again");
        }

        // Shutdown begins: not ready (the load balancer stops sending), still alive, and an
        // open live board is told when to reconnect before its stream ends.
        assert_eq!(w.app.login(who(&w, Role::Nurse), w.clock.now()).await.status(), 200);
        let mut board = w.app.get("/today/events").await;
        assert_eq!(board.status(), 200);
        w.observe.begin_shutdown();
        let (s, b) = ready(&w).await;
        assert_eq!((s, b["reason"].as_str()), (503, Some("shutting_down")), "{b}");
        assert_eq!(w.app.get("/livez").await.status(), 200);
        let mut seen = String::new();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Ok(Some(chunk)) = board.chunk().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        assert!(ended.is_ok(), "the stream ends");
        assert!(seen.contains("retry: 2000") || seen.contains("retry:2000"), "no reconnect hint in {seen:?}");
    }
}
