//! Passwords, second factors and session tokens (security-reference AC-5, AC-7, AC-8, AC-10).

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use keta_domain::DomainError;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Minimum length per ASVS 6.2.1; no composition rules (6.2.5).
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

fn common_passwords() -> &'static HashSet<String> {
    static LIST: OnceLock<HashSet<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../../../data/security/common-passwords.txt")
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// AC-7: length limits and the offline list of common passwords. Any characters allowed.
pub fn check_password_policy(password: &str, username: &str) -> Result<(), DomainError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(DomainError::field(
            "password",
            format!("use at least {MIN_PASSWORD_CHARS} characters (a short phrase works well)"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(DomainError::field("password", format!("use at most {MAX_PASSWORD_CHARS} characters")));
    }
    let lower = password.to_lowercase();
    if common_passwords().contains(&lower) {
        return Err(DomainError::field("password", "this password is on the list of common passwords; choose another"));
    }
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return Err(DomainError::field("password", "the password must not contain the user name"));
    }
    Ok(())
}

/// AC-8: argon2id, m = 19 MiB, t = 2, p = 1, stored as a PHC string.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19 * 1024, 2, 1, None).expect("valid argon2 params"))
}

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16-byte salt encodes");
    hasher().hash_password(password.as_bytes(), &salt).expect("argon2 hashing").to_string()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user does not exist, so a wrong user name
/// takes as long as a wrong password (AC-9: no user enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password("keta-timing-equaliser-not-a-password"))
}

/// 256 random bits, hex-encoded (AC-5: at least 128 bits from a CSPRNG).
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex(&b)
}

/// Only this hash of a session token is stored or logged.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(B32[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(B32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = B32.iter().position(|&x| x as char == c.to_ascii_uppercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// A new TOTP secret (160 bits, base32), as authenticator apps expect.
pub fn new_totp_secret() -> String {
    let mut b = [0u8; 20];
    rand::rng().fill_bytes(&mut b);
    base32_encode(&b)
}

pub const TOTP_STEP_SECONDS: i64 = 30;

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s) for a time step.
pub fn totp_at_step(secret_b32: &str, step: i64) -> Option<String> {
    let key = base32_decode(secret_b32)?;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).ok()?;
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off]) & 0x7f) << 24
        | u32::from(h[off + 1]) << 16
        | u32::from(h[off + 2]) << 8
        | u32::from(h[off + 3]);
    Some(format!("{:06}", bin % 1_000_000))
}

/// The matching step for `code` within ±1 step of `unix_seconds`, if any.
pub fn totp_match(secret_b32: &str, code: &str, unix_seconds: i64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let now = unix_seconds.div_euclid(TOTP_STEP_SECONDS);
    [now, now - 1, now + 1].into_iter().find(|&s| totp_at_step(secret_b32, s).as_deref() == Some(code.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B: secret "12345678901234567890", 8 digits there; 6 digits are its last six.
        let secret = base32_encode(b"12345678901234567890");
        assert_eq!(totp_at_step(&secret, 59 / 30).unwrap(), "287082");
        assert_eq!(totp_at_step(&secret, 1_111_111_109 / 30).unwrap(), "081804");
        assert_eq!(totp_at_step(&secret, 2_000_000_000 / 30).unwrap(), "279037");
        assert_eq!(totp_match(&secret, "287082", 59), Some(1));
        assert_eq!(totp_match(&secret, "287082", 59 + 90), None, "outside the window");
    }

    #[test]
    fn base32_round_trips() {
        for data in [&b""[..], b"f", b"fo", b"foobar", b"\x00\xff\x10"] {
            assert_eq!(base32_decode(&base32_encode(data)).unwrap(), data);
        }
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn password_policy() {
        assert!(check_password_policy("short", "x").is_err());
        assert!(check_password_policy("password1", "x").is_err(), "common");
        assert!(check_password_policy("PASSWORD1", "x").is_err(), "common, any case");
        assert!(check_password_policy("amelia-rivera-2026", "amelia").is_err(), "contains the user name");
        assert!(check_password_policy("correct horse battery staple", "amelia").is_ok());
        assert!(check_password_policy("ünïcödé pässwörd ✓", "amelia").is_ok(), "any characters");
        assert!(common_passwords().len() >= 3000);
    }

    #[test]
    fn argon2id_parameters_meet_ac8() {
        let h = hash_password("correct horse battery staple");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("correct horse battery stapl", &h));
    }
}
