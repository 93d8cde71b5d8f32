//! Serving a clinic's network: staff sign in through `keta serve`'s TLS listener
//! and through a trusted reverse proxy; over plain HTTP from another machine the refusal is
//! a page that says to use HTTPS, not raw JSON.

use std::net::SocketAddr;
use std::sync::Arc;

use keta_domain::access::Role;
use keta_testkit::{ManualClock, StaffLogin, TestDb, seed_staff};
use keta_web::serving::TrustedProxies;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

use crate::fixtures::*;

/// One HTTP/1.1 exchange over any stream: the status, the raw headers and the body.
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    request: &str,
) -> (u16, String, String) {
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await; // a TLS close without notify is fine here
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn cookie(head: &str) -> String {
    let v = header(head, "set-cookie").expect("a session cookie");
    v.split(';').next().unwrap().to_string()
}

fn post(path: &str, host: &str, extra: &[(&str, &str)], body: &str) -> String {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

fn form_value(s: &str) -> String {
    keta_web::auth::urlencode(s)
}

async fn world() -> (TestDb, ManualClock, StaffLogin) {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let a = site(&db.store, "NET-1").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let nurse = staff.into_iter().find(|s| s.role == Role::Nurse).unwrap();
    (db, clock, nurse)
}

fn code(who: &StaffLogin, clock: &ManualClock) -> String {
    keta_store::credentials::totp_at_step(&who.totp_secret, clock.now().unix_timestamp().div_euclid(30)).unwrap()
}

#[tokio::test]
async fn staff_sign_in_through_the_tls_listener_with_a_certificate_and_key() {
    let (db, clock, nurse) = world().await;
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, made.cert.pem()).unwrap();
    std::fs::write(&key_path, made.signing_key.serialize_pem()).unwrap();
    // A key that does not belong to the certificate is refused naming the problem.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let wrong_key = dir.path().join("wrong.pem");
    std::fs::write(&wrong_key, other.signing_key.serialize_pem()).unwrap();
    let e = keta_web::serving::tls_config(&cert_path, &wrong_key).unwrap_err();
    assert!(e.contains("do not fit together"), "{e}");
    let e = keta_web::serving::tls_config(&key_path, &key_path).unwrap_err();
    assert!(e.contains("no certificate"), "{e}");

    let tls = keta_web::serving::tls_config(&cert_path, &key_path).expect("PEM certificate and key load");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(keta_web::serving::serve_tls(listener, tls, keta_web::AppState::new(db.store.clone()), async move {
        let _ = rx.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let connector = tokio_rustls::TlsConnector::from(client);
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        connector.connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp).await.expect("handshake")
    };
    // A plain-HTTP client on the TLS port gets no page at all.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf).await;
    assert!(!String::from_utf8_lossy(&buf).contains("<form"), "no sign-in form over plain HTTP on the TLS port");

    // As a browser on a tablet would: same-origin form posts to https://localhost:PORT.
    let host = format!("localhost:{}", addr.port());
    let origin = format!("https://{host}");
    let browser = [("Origin", origin.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let body = format!("username={}&password={}&next=/today", nurse.username, form_value(&nurse.password));
    let (status, head, _) = exchange(connect().await, &post("/login", &host, &browser, &body)).await;
    assert_eq!(status, 303, "{head}");
    assert!(header(&head, "location").unwrap().starts_with("/login/code"), "{head}");
    let session = cookie(&head);
    assert!(header(&head, "set-cookie").unwrap().contains("Secure"));
    clock.advance(time::Duration::seconds(31));
    let mut with_cookie = browser.to_vec();
    with_cookie.push(("Cookie", session.as_str()));
    let body = format!("code={}&next=/today", code(&nurse, &clock));
    let (status, head, _) = exchange(connect().await, &post("/login/code", &host, &with_cookie, &body)).await;
    assert_eq!((status, header(&head, "location")), (303, Some("/today")), "{head}");
    let get = format!("GET /today HTTP/1.1\r\nHost: {host}\r\nCookie: {session}\r\nConnection: close\r\n\r\n");
    let (status, _, page) = exchange(connect().await, &get).await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign out"), "signed in over TLS");
    let _ = tx.send(());
}

async fn spawn(db: &TestDb, proxies: TrustedProxies) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = keta_web::AppState::new(db.store.clone()).with_trusted_proxies(proxies);
    tokio::spawn(keta_web::serve(listener, state, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

#[tokio::test]
async fn behind_a_trusted_proxy_sign_in_works_and_plain_http_from_the_lan_gets_a_page_saying_use_https() {
    let (db, clock, nurse) = world().await;
    let body = format!("username={}&password={}&next=/today", nurse.username, form_value(&nurse.password));
    // The proxy (here on loopback) terminated TLS for https://keta.clinic.example and passes
    // the browser's host and address on.
    let proxied = [
        ("Origin", "https://keta.clinic.example"),
        ("Sec-Fetch-Site", "same-origin"),
        ("X-Forwarded-Host", "keta.clinic.example"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
    ];

    // Not configured as trusted: its headers are ignored and the form is refused with a page.
    let (addr, stop) = spawn(&db, TrustedProxies::default()).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, head, page) = exchange(tcp, &post("/login", &addr.to_string(), &proxied, &body)).await;
    assert_eq!(status, 403, "{head}");
    assert!(header(&head, "content-type").unwrap().starts_with("text/html"), "{head}");
    assert!(page.contains("docs/serving.md"), "{page}");
    let _ = stop.send(());

    let (addr, stop) = spawn(&db, TrustedProxies::parse("127.0.0.1, ::1").unwrap()).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, head, _) = exchange(tcp, &post("/login", &addr.to_string(), &proxied, &body)).await;
    assert_eq!(status, 303, "{head}");
    let session = cookie(&head);
    clock.advance(time::Duration::seconds(31));
    let mut with_cookie = proxied.to_vec();
    with_cookie.push(("Cookie", session.as_str()));
    let code_body = format!("code={}&next=/today", code(&nurse, &clock));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, head, _) = exchange(tcp, &post("/login/code", &addr.to_string(), &with_cookie, &code_body)).await;
    assert_eq!((status, header(&head, "location")), (303, Some("/today")), "{head}");
    // A tablet on the LAN over plain HTTP: the browser sends `Origin: null` and no
    // Sec-Fetch-Site (it only sends them to secure origins). The page says what to do.
    let lan = [("Origin", "null")];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, head, page) = exchange(tcp, &post("/login", "192.168.1.20:8080", &lan, &body)).await;
    assert_eq!(status, 403, "{head}");
    assert!(header(&head, "content-type").unwrap().starts_with("text/html"), "an HTML page, not JSON: {head}");
    assert!(page.contains("https://192.168.1.20:8080/"), "names the HTTPS address to use: {page}");
    assert!(page.contains("keta serve --tls-cert"), "{page}");
    // The API keeps its problem+json.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, head, _) = exchange(tcp, &post("/api/v1/auth/logout", "192.168.1.20:8080", &lan, "")).await;
    assert_eq!(status, 403);
    assert!(header(&head, "content-type").unwrap().contains("problem+json"), "{head}");
    let _ = stop.send(());
}
