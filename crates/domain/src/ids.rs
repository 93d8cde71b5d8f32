//! Typed identifiers: a session id can never be passed where a patient id is expected.

/// Declares `i64` id newtypes (serialised as the bare number). The one macro for ids: the
/// ledger's and notes' ids use it too.
macro_rules! id_type {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
        }
    )*};
}

pub(crate) use id_type;

id_type!(SiteId, ChairId, PatientId, CourseId, SessionId, StaffId, ResponseId, AlertId, RecordId);
