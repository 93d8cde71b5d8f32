//! The demo's reminder outbox: with log-only delivery nothing leaves the machine, so the
//! messages (and their single-use links) are listed here for staff to open.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use keta_domain::access::Permission;

use super::page::{Area, Chrome, UiError, UiResult, render};
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct OutboxLine {
    pub to: String,
    pub subject: String,
    pub link: Option<String>,
}

#[derive(Template)]
#[template(path = "checkins/outbox.html")]
struct OutboxPage {
    chrome: Chrome,
    messages: Vec<OutboxLine>,
}

/// The first `/c/` link in a message body.
fn link_in(text: &str) -> Option<String> {
    text.split_whitespace().find(|w| w.contains("/c/")).map(|w| w.trim_end_matches(['.', ',']).to_string())
}

pub async fn get_outbox(State(st): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    // Every patient's working link is on this page: clinical staff only, and only in the demo.
    user.actor.require(Permission::ViewClinical)?;
    let Some(mail) = &st.reminders.outbox else {
        return Err(UiError::NotFound("The outbox (this server sends real reminders)".into()));
    };
    let mut messages: Vec<OutboxLine> =
        mail.sent().into_iter().map(|m| OutboxLine { link: link_in(&m.text), to: m.to, subject: m.subject }).collect();
    if let Some(texts) = &st.reminders.text_outbox {
        messages.extend(texts.sent().into_iter().map(|t| OutboxLine {
            link: link_in(&t.text),
            subject: "Text message".into(),
            to: t.to,
        }));
    }
    messages.reverse();
    Ok(render(&OutboxPage { chrome: Chrome::new(&user, "Reminder outbox", Area::Outbox), messages }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_link() {
        let t = "Please answer:\n\nhttp://x/c/abc\n\nThe link works once.";
        assert_eq!(super::link_in(t).as_deref(), Some("http://x/c/abc"));
        assert_eq!(super::link_in("no link here"), None);
    }
}
