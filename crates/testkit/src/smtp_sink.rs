//! A local SMTP sink for tests: accepts mail on `127.0.0.1:<random port>` and keeps it.
//!
//! It speaks enough SMTP for `lettre` (and most clients): the 220 greeting, EHLO/HELO,
//! AUTH PLAIN and LOGIN (any credentials are accepted and recorded), MAIL FROM, RCPT TO, DATA
//! with dot-unstuffing, RSET, NOOP, VRFY and QUIT. No TLS, no pipelining, no delivery anywhere.
//!
//! ```no_run
//! # async fn demo() {
//! use keta_testkit::smtp_sink::SmtpSink;
//! let sink = SmtpSink::start().await;
//! // ... point an SmtpMailer at sink.url() and send ...
//! let mails = sink.wait_for(1, std::time::Duration::from_secs(5)).await;
//! assert!(mails[0].body_text().contains("https://"));
//! # }
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// The longest command or message line the sink reads (RFC 5321 allows 1000 with CRLF).
const MAX_LINE: u64 = 4096;
/// The largest message the sink keeps.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The name the client gave in EHLO/HELO.
    pub helo: String,
    /// User name and password from AUTH, if the client authenticated.
    pub auth: Option<(String, String)>,
    /// The envelope sender (`MAIL FROM:<...>`), without the angle brackets.
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO:<...>`), without the angle brackets.
    pub recipients: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, CRLF line endings, without the final `.`.
    pub data: Vec<u8>,
}

impl ReceivedMail {
    /// The raw message as text (invalid UTF-8 replaced).
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The first header called `name` (any case), unfolded, with RFC 2047 encoded words
    /// (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_head_body(&self.data);
        unfolded_headers(head)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| decode_encoded_words(value.trim()))
    }

    /// The decoded Subject header.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The body of a single-part message, decoded from its Content-Transfer-Encoding
    /// (quoted-printable: soft line breaks removed and `=XX` decoded; base64; 7bit/8bit as is),
    /// read as UTF-8, with CRLF turned into `\n`. A URL folded by quoted-printable comes back
    /// whole.
    pub fn body_text(&self) -> String {
        let (_, body) = split_head_body(&self.data);
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
        let decoded = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => decode_base64(body).unwrap_or_else(|| body.to_vec()),
            _ => body.to_vec(),
        };
        String::from_utf8_lossy(&decoded).replace("\r\n", "\n")
    }
}

struct SinkState {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    /// Recipients (lowercase) that RCPT TO refuses with 550.
    refused: Mutex<HashSet<String>>,
}

impl SinkState {
    fn mails(&self) -> MutexGuard<'_, Vec<ReceivedMail>> {
        self.mails.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn refuses(&self, address: &str) -> bool {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner).contains(&address.to_ascii_lowercase())
    }
}

/// A running SMTP sink; stops (closing every connection) when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<SinkState>,
    server: JoinHandle<()>,
}

impl SmtpSink {
    /// Starts a sink on 127.0.0.1 with a port the OS picks.
    ///
    /// Panics if no port can be bound (test support).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let addr = listener.local_addr().expect("SMTP sink address");
        let state = Arc::new(SinkState {
            mails: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            refused: Mutex::new(HashSet::new()),
        });
        let server = tokio::spawn(accept_loop(listener, state.clone()));
        Self { addr, state, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, for `SmtpMailer::new` or `KETA_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// An [`keta_notify::SmtpMailer`] pointed at this sink, sending as `from`.
    pub fn mailer(&self, from: &str) -> keta_notify::SmtpMailer {
        keta_notify::SmtpMailer::new(&self.url(), from).expect("a mailer for the sink")
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.state.mails().clone()
    }

    /// From now on, `RCPT TO` this address (any case) is answered `550 5.1.1`.
    pub fn refuse_recipient(&self, address: &str) {
        self.state.refused.lock().unwrap_or_else(PoisonError::into_inner).insert(address.to_ascii_lowercase());
    }

    /// Waits until at least `n` messages have arrived and returns all of them.
    ///
    /// Panics after `timeout` naming how many arrived (test support).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so an arrival between the two is not missed.
            let arrived = self.state.arrived.notified();
            {
                let mails = self.state.mails();
                if mails.len() >= n {
                    return mails.clone();
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("SMTP sink: {} of {n} messages arrived within {timeout:?}", self.state.mails().len());
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks, so this ends them too.
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<SinkState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    connections.spawn(async move {
                        // A client that hangs up mid-conversation is the client's business.
                        let _ = serve_connection(stream, state).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The envelope and login of one SMTP conversation.
#[derive(Default)]
struct Session {
    helo: String,
    auth: Option<(String, String)>,
    mail_from: Option<String>,
    recipients: Vec<String>,
}

impl Session {
    fn reset_envelope(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.flush().await
}

/// Reads one line (with its line ending) into `line`; false at end of stream.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let n = r.take(MAX_LINE).read_until(b'\n', line).await?;
    if n == 0 {
        return Ok(false);
    }
    if !line.ends_with(b"\n") {
        if n as u64 >= MAX_LINE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "line too long"));
        }
        return Ok(false); // a last line without an ending: the client went away
    }
    Ok(true)
}

/// Reads a line and returns it without the line ending, or None at end of stream.
async fn read_text_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    if !read_line(r, &mut line).await? {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string()))
}

async fn serve_connection(stream: TcpStream, state: Arc<SinkState>) -> std::io::Result<()> {
    let (read, mut w) = stream.into_split();
    let mut r = BufReader::new(read);
    let mut s = Session::default();
    reply(&mut w, "220 keta-smtp-sink ESMTP ready\r\n").await?;
    while let Some(line) = read_text_line(&mut r).await? {
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => {
                s = Session { helo: arg, ..Session::default() };
                reply(&mut w, "250-keta-smtp-sink\r\n250 AUTH PLAIN LOGIN\r\n").await?;
            }
            "HELO" => {
                s = Session { helo: arg, ..Session::default() };
                reply(&mut w, "250 keta-smtp-sink\r\n").await?;
            }
            "AUTH" => match authenticate(&arg, &mut r, &mut w).await? {
                Some(credentials) => {
                    s.auth = Some(credentials);
                    reply(&mut w, "235 2.7.0 Authentication successful\r\n").await?;
                }
                None => reply(&mut w, "535 5.7.8 Authentication credentials invalid\r\n").await?,
            },
            "MAIL" => match path_argument(&arg, "FROM:") {
                Some(from) => {
                    s.reset_envelope();
                    s.mail_from = Some(from);
                    reply(&mut w, "250 2.1.0 Ok\r\n").await?;
                }
                None => reply(&mut w, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n").await?,
            },
            "RCPT" => match (&s.mail_from, path_argument(&arg, "TO:")) {
                (None, _) => reply(&mut w, "503 5.5.1 MAIL first\r\n").await?,
                (Some(_), None) => reply(&mut w, "501 5.5.4 Syntax: RCPT TO:<address>\r\n").await?,
                (Some(_), Some(to)) if state.refuses(&to) => {
                    reply(&mut w, &format!("550 5.1.1 <{to}>: Recipient address rejected\r\n")).await?
                }
                (Some(_), Some(to)) => {
                    s.recipients.push(to);
                    reply(&mut w, "250 2.1.5 Ok\r\n").await?;
                }
            },
            "DATA" => {
                if s.mail_from.is_none() || s.recipients.is_empty() {
                    reply(&mut w, "503 5.5.1 RCPT first\r\n").await?;
                    continue;
                }
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let Some(data) = read_data(&mut r).await? else {
                    return Ok(());
                };
                if data.len() > MAX_MESSAGE {
                    reply(&mut w, "552 5.3.4 Message too big\r\n").await?;
                    s.reset_envelope();
                    continue;
                }
                let mail = ReceivedMail {
                    helo: s.helo.clone(),
                    auth: s.auth.clone(),
                    mail_from: s.mail_from.take().unwrap_or_default(),
                    recipients: std::mem::take(&mut s.recipients),
                    data,
                };
                // Kept before the 250 goes out: once the client's send returns, the mail is here.
                let n = {
                    let mut mails = state.mails();
                    mails.push(mail);
                    mails.len()
                };
                state.arrived.notify_waiters();
                reply(&mut w, &format!("250 2.0.0 Ok: queued as SINK{n}\r\n")).await?;
            }
            "RSET" => {
                s.reset_envelope();
                reply(&mut w, "250 2.0.0 Ok\r\n").await?;
            }
            "NOOP" => reply(&mut w, "250 2.0.0 Ok\r\n").await?,
            "VRFY" => reply(&mut w, "252 2.0.0 Cannot VRFY user\r\n").await?,
            "QUIT" => {
                reply(&mut w, "221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => reply(&mut w, "502 5.5.2 Command not recognized\r\n").await?,
        }
    }
    Ok(())
}

/// `FROM:<a@b> SIZE=10` -> `a@b` (also accepts a space after the colon and no brackets).
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let path = match rest.strip_prefix('<') {
        Some(inner) => inner.split_once('>')?.0,
        None => rest.split(' ').next().unwrap_or(""),
    };
    Some(path.to_string())
}

/// Reads the message after DATA up to the lone `.` line, removing dot-stuffing.
/// None when the client disconnects first. Lines past [`MAX_MESSAGE`] are read but not kept,
/// so the size check can answer 552.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    let mut too_big = false;
    loop {
        if !read_line(r, &mut line).await? {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            if too_big {
                data.resize(MAX_MESSAGE + 1, 0);
            }
            return Ok(Some(data));
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + content.len() > MAX_MESSAGE {
            too_big = true;
        } else {
            data.extend_from_slice(content);
        }
    }
}

/// AUTH PLAIN (with or without the initial response) and AUTH LOGIN. Returns the user name and
/// password, or None when the exchange is malformed.
async fn authenticate<R, W>(arg: &str, r: &mut R, w: &mut W) -> std::io::Result<Option<(String, String)>>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mechanism, initial) = match arg.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_string())),
        None => (arg.to_ascii_uppercase(), None),
    };
    let decode = |s: &str| decode_base64(s.as_bytes()).map(|b| String::from_utf8_lossy(&b).into_owned());
    match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(i) => i,
                None => {
                    reply(w, "334 \r\n").await?;
                    let Some(line) = read_text_line(r).await? else { return Ok(None) };
                    line
                }
            };
            // authzid \0 authcid \0 password
            let Some(decoded) = decode(&response) else { return Ok(None) };
            let mut parts = decoded.split('\0');
            let (_authz, user, password) = (parts.next(), parts.next(), parts.next());
            Ok(user.zip(password).map(|(u, p)| (u.to_string(), p.to_string())))
        }
        "LOGIN" => {
            let user = match initial {
                Some(i) => i,
                None => {
                    reply(w, "334 VXNlcm5hbWU6\r\n").await?; // "Username:"
                    let Some(line) = read_text_line(r).await? else { return Ok(None) };
                    line
                }
            };
            reply(w, "334 UGFzc3dvcmQ6\r\n").await?; // "Password:"
            let Some(password) = read_text_line(r).await? else { return Ok(None) };
            Ok(decode(&user).zip(decode(&password)))
        }
        _ => Ok(None),
    }
}

/// Splits a message at the first empty line into header block and body.
fn split_head_body(data: &[u8]) -> (&[u8], &[u8]) {
    let crlf = data.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = data.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => {
            let (end, start) = if a.0 <= b.0 { a } else { b };
            (&data[..end], &data[start..])
        }
        (Some((end, start)), None) | (None, Some((end, start))) => (&data[..end], &data[start..]),
        (None, None) => (data, &[]),
    }
}

/// `(name, value)` pairs with folded lines joined (RFC 5322 §2.2.3).
fn unfolded_headers(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.to_string()));
        }
    }
    headers
}

/// Decodes RFC 2047 encoded words (`=?charset?B|Q?text?=`, UTF-8 and ASCII charsets);
/// whitespace between two encoded words is dropped, as the RFC says.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("=?") else {
            out.push_str(rest);
            break;
        };
        let word = rest[start + 2..].splitn(3, '?').collect::<Vec<_>>();
        let decoded = match word.as_slice() {
            [_charset, encoding, tail] => tail.find("?=").and_then(|end| {
                let text = &tail[..end];
                let bytes = match encoding.to_ascii_uppercase().as_str() {
                    "B" => decode_base64(text.as_bytes())?,
                    "Q" => decode_quoted_printable(text.replace('_', " ").as_bytes()),
                    _ => return None,
                };
                // Length of "=?charset?E?text?=".
                let len = 2 + word[0].len() + 1 + encoding.len() + 1 + end + 2;
                Some((String::from_utf8_lossy(&bytes).into_owned(), len))
            }),
            _ => None,
        };
        match decoded {
            Some((text, len)) => {
                let between = &rest[..start];
                if !(last_was_word && between.trim().is_empty()) {
                    out.push_str(between);
                }
                out.push_str(&text);
                rest = &rest[start + len..];
                last_was_word = true;
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
                last_was_word = false;
            }
        }
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7): `=` at a line end is a soft break, `=XX` a byte.
fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'=' {
            if input[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if input[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let (Some(h), Some(l)) = (input.get(i + 1).and_then(|&b| hex(b)), input.get(i + 2).and_then(|&b| hex(b)))
            {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Standard base64, whitespace ignored; None when malformed.
fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let value = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in input.iter().filter(|b| !b.is_ascii_whitespace()) {
        if b == b'=' {
            break;
        }
        acc = (acc << 6) | u32::from(value(b)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(data: &str) -> ReceivedMail {
        ReceivedMail {
            helo: String::new(),
            auth: None,
            mail_from: String::new(),
            recipients: vec![],
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn quoted_printable_soft_breaks_and_escapes() {
        let m = mail(
            "Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             https://clinic.example/c/abc=\r\ndef=3Dghi caf=C3=A9\r\nend=\r\n",
        );
        assert_eq!(m.body_text(), "https://clinic.example/c/abcdef=ghi café\nend");
    }

    #[test]
    fn base64_and_plain_bodies() {
        assert_eq!(
            mail("Content-Transfer-Encoding: base64\r\n\r\naGVsbG8g\r\nd29ybGQ=\r\n").body_text(),
            "hello world"
        );
        assert_eq!(mail("Content-Transfer-Encoding: 7bit\r\n\r\nhi\r\nthere").body_text(), "hi\nthere");
        assert_eq!(mail("Subject: only headers").body_text(), "");
    }

    #[test]
    fn headers_unfold_and_decode() {
        let m = mail(
            "Subject: =?utf-8?b?UmFwcGVsIDogc8OpYW5jZQ==?=\r\n =?utf-8?q?_de_mardi?=\r\n\
             X-Long: one\r\n\ttwo\r\n\r\nbody",
        );
        assert_eq!(m.subject().as_deref(), Some("Rappel : séance de mardi"));
        assert_eq!(m.header("x-long").as_deref(), Some("one\ttwo"));
        assert_eq!(m.header("missing"), None);
        assert_eq!(decode_encoded_words("plain =? not a word"), "plain =? not a word");
    }

    #[test]
    fn smtp_paths() {
        assert_eq!(path_argument("FROM:<a@b.example> BODY=8BITMIME", "FROM:").as_deref(), Some("a@b.example"));
        assert_eq!(path_argument("to: <a@b.example>", "TO:").as_deref(), Some("a@b.example"));
        assert_eq!(path_argument("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path_argument("FRUM:<a@b>", "FROM:"), None);
        assert_eq!(path_argument("", "FROM:"), None);
    }
}
