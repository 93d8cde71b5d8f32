//! One error type for the crate. Messages say what to change, because they reach a
//! clinician through `keta pk ...` unchanged.

use crate::regimen::RegimenError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PkError {
    #[error("unknown model '{name}'; known models: {known}")]
    UnknownModel { name: String, known: String },
    /// The model needs a value the caller did not give (a covariate, an absorption rate).
    #[error("{model}: {message}")]
    MissingInput { model: String, message: String },
    /// The model has no way to represent this route of administration.
    #[error("{model} cannot take a dose by {route}: {reason}")]
    UnsupportedRoute { model: String, route: String, reason: String },
    /// A value out of range or inconsistent (negative weight, unsorted times, ...).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Regimen(#[from] RegimenError),
    /// An embedded model file is wrong: a bug caught by the tests, never by a user.
    #[error("model data {file}: {message}")]
    Data { file: String, message: String },
}

pub(crate) fn invalid(message: impl Into<String>) -> PkError {
    PkError::Invalid(message.into())
}
