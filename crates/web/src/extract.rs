//! Extractors whose rejections are problem+json, and the caller's identity.

use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A JSON request body. Every body Keta takes is an object; serde would also read a struct
/// from an array of its fields in order (`[null, null]`), which no client means, so an array
/// is refused.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        // The body limit layer ends the stream past its limit: that is "too large".
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|_| ApiError::for_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE))?;
        let again = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        let axum::Json(value) = axum::Json::<T>::from_request(again, state).await?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::invalid(vec![keta_domain::FieldError::new(
                "body",
                "send a JSON object with named fields, not an array",
            )]));
        }
        Ok(Json(value))
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);
