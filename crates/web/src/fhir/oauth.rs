//! OAuth2 client credentials (RFC 6749 §4.4) for API clients, as SMART Backend Services
//! clients use it with a client secret:
//!
//! * `POST /fhir/R4/auth/token` with `grant_type=client_credentials` and the client's id (its
//!   name) and secret (the credential shown when the client was created), by HTTP Basic
//!   (`client_secret_basic`) or in the form (`client_secret_post`), and a `scope` of
//!   `system/*.read` or narrower (`system/Observation.read system/Patient.read`; the SMART v2
//!   spellings `.rs`, `.r` and `.s` are read too). A scope beyond read is refused
//!   (`invalid_scope`): API clients only read.
//! * Answers `{access_token, token_type: "bearer", expires_in, scope}`; the token is stored
//!   only as its hash, expires after the access-token lifetime (a setting), and stops working
//!   at once when the client is revoked.
//! * Errors are RFC 6749 §5.2 JSON (`{"error": "invalid_client", "error_description": ...}`).
//! * `GET /fhir/R4/.well-known/smart-configuration` names the token endpoint, and the
//!   CapabilityStatement's security extension carries the same.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::{ReadScope, TYPES};
use crate::AppState;

/// The scope a client's own credential carries (read and search of every served type).
const CLIENT_SCOPE: &str = "fhir.read";

/// Parses a space-separated scope list into the types it lets a client read; an error names
/// the first scope that is not a system-level read of a served type.
pub fn parse_scope(scope: &str) -> Result<ReadScope, String> {
    let mut types: Vec<String> = Vec::new();
    let mut all = false;
    let words: Vec<&str> = scope.split_whitespace().collect();
    if words.is_empty() {
        return Err("give a scope such as system/*.read".into());
    }
    for w in words {
        if w == CLIENT_SCOPE {
            all = true;
            continue;
        }
        let Some(rest) = w.strip_prefix("system/") else {
            return Err(format!("'{w}': API clients have system scopes only, e.g. system/*.read"));
        };
        let Some((rtype, access)) = rest.split_once('.') else {
            return Err(format!("'{w}' is not a scope: use system/<Type>.read"));
        };
        if !matches!(access, "read" | "rs" | "r" | "s") {
            return Err(format!("'{w}': API clients may only read (system/{rtype}.read)"));
        }
        if rtype == "*" {
            all = true;
        } else if TYPES.iter().any(|(t, _)| *t == rtype) {
            if !types.iter().any(|t| t == rtype) {
                types.push(rtype.to_string());
            }
        } else {
            return Err(format!("'{w}': Keta does not serve {rtype}; see /fhir/R4/metadata"));
        }
    }
    Ok(if all { ReadScope::All } else { ReadScope::Types(types) })
}

/// The scope as granted, written back in SMART v1 form.
fn granted(s: &ReadScope) -> String {
    match s {
        ReadScope::All => "system/*.read".into(),
        ReadScope::Types(t) => t.iter().map(|x| format!("system/{x}.read")).collect::<Vec<_>>().join(" "),
    }
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
        json!({ "error": error, "error_description": description }).to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"keta\""));
    }
    r
}

/// The client id and secret from HTTP Basic (RFC 6749 §2.3.1: each form-encoded), if sent.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok();
    let text = decoded.and_then(|d| String::from_utf8(d).ok());
    Some(match text.as_deref().and_then(|t| t.split_once(':')) {
        Some((id, secret)) => Ok((form_urlencoded_one(id), form_urlencoded_one(secret))),
        None => Err(()),
    })
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_urlencoded_one(s: &str) -> String {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).unwrap_or_default();
    pairs.into_iter().next().map(|(_, v)| v).unwrap_or_else(|| s.to_string())
}

/// `POST /fhir/R4/auth/token`: the client-credentials grant.
pub async fn post_token(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the request as application/x-www-form-urlencoded (grant_type=client_credentials&scope=system/*.read)",
        );
    }
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "the form could not be read");
    };
    // Each parameter at most once (RFC 6749 §3.2); `Err` names the repeated one.
    let one = |k: &'static str| -> Result<Option<String>, &'static str> {
        let mut v = pairs.iter().filter(|(n, _)| n == k).map(|(_, v)| v.clone());
        let first = v.next();
        if v.next().is_some() {
            return Err(k);
        }
        Ok(first)
    };
    let (grant, scope, form_id, form_secret) =
        match (one("grant_type"), one("scope"), one("client_id"), one("client_secret")) {
            (Ok(g), Ok(s), Ok(i), Ok(c)) => (g, s, i, c),
            (Err(k), ..) | (_, Err(k), ..) | (_, _, Err(k), _) | (.., Err(k)) => {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("give {k} once"));
            }
        };
    match grant.as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type '{other}' is not supported: use client_credentials"),
            );
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "give grant_type=client_credentials"),
    }
    let (client_id, secret, by_basic) = match (basic_credentials(&headers), form_id, form_secret) {
        (Some(_), _, Some(_)) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "authenticate one way: HTTP Basic or client_secret in the form, not both",
            );
        }
        (Some(Ok((id, secret))), _, None) => (id, secret, true),
        (Some(Err(())), _, _) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "the Basic credentials could not be read");
        }
        (None, Some(id), Some(secret)) => (id, secret, false),
        (None, _, _) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "authenticate the client: HTTP Basic with its id and secret, or client_id and client_secret in the form",
            );
        }
    };
    let wanted = match scope.as_deref().map(parse_scope) {
        None => ReadScope::All,
        Some(Ok(s)) => s,
        Some(Err(why)) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &why),
    };
    let scope_text = granted(&wanted);
    match st.store.issue_access_token(&client_id, &secret, scope_text, st.bulk.access_token_lifetime).await {
        Ok(Some(t)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
            json!({ "access_token": t.token, "token_type": "bearer", "expires_in": t.expires_in_secs, "scope": t.scope })
                .to_string(),
        )
            .into_response(),
        Ok(None) => oauth_error(
            if by_basic { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST },
            "invalid_client",
            "the client id or secret is wrong, or the client has been revoked",
        ),
        Err(e) => {
            tracing::error!(error = %e, "issuing an access token failed");
            oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again shortly")
        }
    }
}

/// The token endpoint's absolute URL.
pub fn token_url(st: &AppState) -> String {
    format!("{}/fhir/R4/auth/token", st.reminders.public_url)
}

/// `GET /fhir/R4/.well-known/smart-configuration`.
pub async fn get_smart_configuration(State(st): State<AppState>) -> Response {
    let body: Value = json!({
        "token_endpoint": token_url(&st),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["system/*.read", "system/*.rs"],
        "capabilities": ["client-confidential-symmetric", "permission-v1", "permission-v2"],
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_system_reads_of_served_types_only() {
        assert_eq!(parse_scope("system/*.read"), Ok(ReadScope::All));
        assert_eq!(parse_scope("system/*.rs"), Ok(ReadScope::All));
        assert_eq!(
            parse_scope("system/Observation.read system/Patient.rs system/Observation.read"),
            Ok(ReadScope::Types(vec!["Observation".into(), "Patient".into()]))
        );
        for bad in [
            "",
            "system/*.write",
            "system/*.*",
            "patient/*.read",
            "user/Observation.read",
            "system/Medication.read",
            "openid",
        ] {
            assert!(parse_scope(bad).is_err(), "{bad}");
        }
        assert!(ReadScope::Types(vec!["Observation".into()]).allows("Observation"));
        assert!(!ReadScope::Types(vec!["Observation".into()]).allows("Patient"));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let enc = base64::engine::general_purpose::STANDARD.encode("payer%2Dexport:keta_fhir_ab%2Bc");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {enc}")).unwrap());
        assert_eq!(basic_credentials(&h), Some(Ok(("payer-export".into(), "keta_fhir_ab+c".into()))));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), Some(Err(())));
    }
}
