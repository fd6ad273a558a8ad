//! Every error the API answers, each with its Tencent Cloud error code (the common codes of
//! API 3.0 and the billing ones) and a message that says exactly what was wrong.

use respack_domain::RuleViolation;
use respack_store::StoreError;

/// An error answered as `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    SignatureFailure(String),
    #[error("{0}")]
    SignatureExpire(String),
    #[error("the SecretId {0} does not exist; create a key in the console or with `respack-web keys create`")]
    SecretIdNotFound(String),
    #[error("the SecretId {0} was revoked; use an active key")]
    SecretIdRevoked(String),
    #[error("{0}")]
    InvalidSecretId(String),
    #[error("respack issues no temporary credentials; send no X-TC-Token")]
    TokenFailure,
    #[error("{0}")]
    UnauthorizedOperation(String),
    #[error("{0}")]
    InvalidAction(String),
    #[error("the version {0:?} is not supported; the billing API is version 2018-07-09")]
    NoSuchVersion(String),
    #[error("{0}")]
    MissingParameter(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    UnknownParameter(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    RequestLimitExceeded(String),
    #[error("the request body is larger than {0} bytes")]
    RequestSizeLimitExceeded(usize),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("the summary of {0} is being built; try again in a few seconds")]
    SummaryDataNotReady(String),
    #[error("{0}")]
    BalanceInsufficient(String),
    #[error("{0}")]
    NotAllowToRefund(String),
    #[error("{0}")]
    FailedOperation(String),
    #[error("the request failed because of an internal error; it is safe to send it again (RequestId identifies it in respack's logs)")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::SignatureFailure(_) => "AuthFailure.SignatureFailure",
            ApiError::SignatureExpire(_) => "AuthFailure.SignatureExpire",
            ApiError::SecretIdNotFound(_) | ApiError::SecretIdRevoked(_) => "AuthFailure.SecretIdNotFound",
            ApiError::InvalidSecretId(_) => "AuthFailure.InvalidSecretId",
            ApiError::TokenFailure => "AuthFailure.TokenFailure",
            ApiError::UnauthorizedOperation(_) => "AuthFailure.UnauthorizedOperation",
            ApiError::InvalidAction(_) => "InvalidAction",
            ApiError::NoSuchVersion(_) => "NoSuchVersion",
            ApiError::MissingParameter(_) => "MissingParameter",
            ApiError::InvalidParameter(_) => "InvalidParameter",
            ApiError::InvalidParameterValue(_) => "InvalidParameterValue",
            ApiError::UnknownParameter(_) => "UnknownParameter",
            ApiError::UnsupportedOperation(_) => "UnsupportedOperation",
            ApiError::RequestLimitExceeded(_) => "RequestLimitExceeded",
            ApiError::RequestSizeLimitExceeded(_) => "RequestSizeLimitExceeded",
            ApiError::ResourceNotFound(_) => "ResourceNotFound",
            ApiError::SummaryDataNotReady(_) => "FailedOperation.SummaryDataNotReady",
            ApiError::BalanceInsufficient(_) => "FailedOperation.BalanceInsufficient",
            ApiError::NotAllowToRefund(_) => "FailedOperation.NotAllowToRefund",
            ApiError::FailedOperation(_) => "FailedOperation",
            // The billing API's own code for a failure it cannot name (seed:
            // DescribeBillResourceSummary's error codes), a subcode of the common InternalError.
            ApiError::Internal(_) => "InternalError.UnknownError",
        }
    }

    pub fn invalid_value(message: impl Into<String>) -> ApiError {
        ApiError::InvalidParameterValue(message.into())
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> ApiError {
        ApiError::Internal(Box::new(error))
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { .. } => ApiError::ResourceNotFound(error.to_string()),
            StoreError::Rule(RuleViolation::InsufficientBalance { .. }) => {
                ApiError::BalanceInsufficient(error.to_string())
            }
            StoreError::Rule(RuleViolation::RefundWindowClosed { .. }) => ApiError::NotAllowToRefund(error.to_string()),
            StoreError::Rule(_) => ApiError::FailedOperation(error.to_string()),
            StoreError::InvalidInput(_) | StoreError::Usage(_) | StoreError::Precision(_) | StoreError::Pack(_) => {
                ApiError::InvalidParameterValue(error.to_string())
            }
            StoreError::TokenReused { .. } => ApiError::InvalidParameterValue(error.to_string()),
            StoreError::Conflict { .. } => ApiError::FailedOperation(error.to_string()),
            StoreError::Database(_) if error.is_transient() => ApiError::FailedOperation(
                "the database was busy with other writers; nothing was changed, send the request again".into(),
            ),
            StoreError::Corrupt(_) | StoreError::Database(_) => ApiError::internal(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_answer_the_codes_a_caller_can_act_on() {
        let corrupt = StoreError::Corrupt("a stored status \"sleeping\"".into());
        let busy = StoreError::Conflict { what: "the account balance".into() };
        let poor = StoreError::Rule(RuleViolation::InsufficientBalance {
            balance: respack_domain::Money::ZERO,
            price: respack_domain::Money::parse("1").unwrap(),
        });
        for (error, code) in [
            (StoreError::NotFound { what: "pack", id: "rp-1".into() }, "ResourceNotFound"),
            (poor, "FailedOperation.BalanceInsufficient"),
            (busy, "FailedOperation"),
            (StoreError::InvalidInput("bad".into()), "InvalidParameterValue"),
            (corrupt, "InternalError.UnknownError"),
        ] {
            assert_eq!(ApiError::from(error).code(), code);
        }
    }
}
