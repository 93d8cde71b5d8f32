//! Signed session notes (security-reference SIG-1, SIG-2) over JSON.
//!
//! Signing and amending need the caller to have re-entered their password recently
//! (`POST /api/v1/auth/reauth`); otherwise 403. The signature shows the caller's
//! printed (display) name. Once the author signs, `PUT /sessions/{id}/note` is refused
//! and changes are amendments.

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::ids::SessionId;
use keta_domain::notes::{NewAmendment, SignNote, SignedNote};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

/// The note with its signatures, its amendment chain (oldest first) and the result of
/// re-checking every hash (`verification.intact` is false if text changed after signing).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/note", tag = "notes", params(("id" = i64, Path)),
    responses((status = 200, body = SignedNote), (status = 404, body = Problem)))]
pub async fn get_note(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<SignedNote>> {
    Ok(Json(st.store.get_signed_note(&user.actor, SessionId(id)).await?))
}

/// Signs the note (or one amendment, with `amendment_id`) as author, co-signer or
/// reviewer. The author signs first, once; that locks the note.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/note/sign", tag = "notes", params(("id" = i64, Path)), request_body = SignNote,
    responses((status = 201, body = SignedNote), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn post_sign_note(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Json(req): Json<SignNote>,
) -> ApiResult<(StatusCode, Json<SignedNote>)> {
    let note = st
        .store
        .sign_session_note(&user.actor, user.reauthenticated_at, SessionId(id), user.display_name.clone(), req)
        .await?;
    Ok((StatusCode::CREATED, Json(note)))
}

/// Amends a signed note: the original stays as it was; the amendment (with its reason)
/// is linked to it and signed by its author.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/note/amendments", tag = "notes", params(("id" = i64, Path)), request_body = NewAmendment,
    responses((status = 201, body = SignedNote), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_amendment(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Json(new): Json<NewAmendment>,
) -> ApiResult<(StatusCode, Json<SignedNote>)> {
    let note = st
        .store
        .amend_session_note(&user.actor, user.reauthenticated_at, SessionId(id), user.display_name.clone(), new)
        .await?;
    Ok((StatusCode::CREATED, Json(note)))
}
