//! Static files, embedded in the binary so the server needs nothing beside it and loads
//! nothing from a CDN. Vendored files carry their version in the name; our own CSS and
//! script carry a hash of their content, so every URL can be cached for a year.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("../../static/keta.css");
const JS: &str = include_str!("../../static/keta.js");
const PATIENT_CSS: &str = include_str!("../../static/patient.css");
const HTMX: &str = include_str!("../../static/htmx-2.0.11.min.js");
const HTMX_SSE: &str = include_str!("../../static/htmx-ext-sse-2.2.4.min.js");

pub const HTMX_HREF: &str = "/static/htmx-2.0.11.min.js";
pub const HTMX_SSE_HREF: &str = "/static/htmx-ext-sse-2.2.4.min.js";

/// FNV-1a, enough to tell one version of a file from the next.
fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

fn hashed(name: &str, ext: &str, body: &str, cell: &'static OnceLock<String>) -> &'static str {
    cell.get_or_init(|| format!("/static/{name}.{}.{ext}", short_hash(body)))
}

pub fn css_href() -> &'static str {
    static C: OnceLock<String> = OnceLock::new();
    hashed("keta", "css", CSS, &C)
}

/// The patient pages' own small stylesheet (phone-first, loads fast on a slow connection).
pub fn patient_css_href() -> &'static str {
    static C: OnceLock<String> = OnceLock::new();
    hashed("patient", "css", PATIENT_CSS, &C)
}

/// The consent forms' signature pad (`ui::consent`).
pub fn signature_js_href() -> &'static str {
    static C: OnceLock<String> = OnceLock::new();
    hashed("signature", "js", super::consent::SIGNATURE_JS, &C)
}

pub fn js_href() -> &'static str {
    static C: OnceLock<String> = OnceLock::new();
    hashed("keta", "js", JS, &C)
}

pub async fn get_static(Path(file): Path<String>) -> Response {
    let path = format!("/static/{file}");
    let (body, kind) = if path == css_href() {
        (CSS, "text/css; charset=utf-8")
    } else if path == patient_css_href() {
        (PATIENT_CSS, "text/css; charset=utf-8")
    } else if path == js_href() {
        (JS, "text/javascript; charset=utf-8")
    } else if path == signature_js_href() {
        (super::consent::SIGNATURE_JS, "text/javascript; charset=utf-8")
    } else if path == HTMX_HREF {
        (HTMX, "text/javascript; charset=utf-8")
    } else if path == HTMX_SSE_HREF {
        (HTMX_SSE, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    r
}
