//! The store's one error type: variants a caller can act on, each message saying what to do.

use respack_domain::{PackError, PrecisionError, RuleViolation, UsageError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id} was not found")]
    NotFound { what: &'static str, id: String },
    #[error(transparent)]
    Rule(#[from] RuleViolation),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Precision(#[from] PrecisionError),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{what} changed while this operation ran; it was not applied, try again")]
    Conflict { what: String },
    #[error("the ClientToken {token:?} was already used for a different request; use a new token")]
    TokenReused { token: String },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
}

impl StoreError {
    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> StoreError {
        StoreError::NotFound { what, id: id.to_string() }
    }

    pub(crate) fn conflict(what: impl Into<String>) -> StoreError {
        StoreError::Conflict { what: what.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> StoreError {
        StoreError::InvalidInput(message.into())
    }

    /// Worth retrying the whole operation: a guarded update lost a race, or the database
    /// reported a transient serialization/lock failure.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Conflict { .. } => true,
            StoreError::Database(error) => {
                let text = error.to_string();
                text.contains("database is locked")
                    || text.contains("could not serialize")
                    || text.contains("deadlock detected")
            }
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
