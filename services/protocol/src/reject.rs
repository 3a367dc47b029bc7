//! Why a message is refused: the value of the dead letter's `x-fleet-reject-reason`
//! header (README, contract §8–§9) and the `reason` label of the dead-letter metric.
//!
//! One enum, so a reason cannot be misspelt in one place and matched in another; the
//! strings are fixed surface (outside tools read the header) and must not change.

use std::fmt;

/// A reason for refusing a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The body is not JSON (or not UTF-8).
    InvalidJson,
    /// A required field of the report is missing.
    MissingField,
    /// A field has a value outside the contract.
    InvalidField,
    /// `schema` is not `fleet.report.v1`.
    UnsupportedSchema,
    /// The body is larger than the contract allows.
    BodyTooLarge,
    /// The message has no `user_id` property.
    MissingUserId,
    /// The AMQP user publishes for no tenant.
    UnknownPublisher,
    /// The routing key names another tenant than the publisher's.
    TenantMismatch,
    /// The routing key is not `v1.<tenant>.report`.
    BadRoutingKey,
    /// `content_type` is not one the service reads.
    UnsupportedContentType,
    /// `message_id` is not `<terminal_id>/<seq>` of the body.
    MessageIdMismatch,
    /// The terminal is already known under another tenant.
    TerminalTenantMismatch,
    /// The store refused the report alone while the database answered.
    StoreRejected,
    /// Delivered too often without being acked.
    DeliveryLimit,
    /// A report batch that is not a JSON array of 1–1000 reports of one terminal (§8).
    InvalidBatch,
    /// The same `message_id` with a different body (§9).
    ConflictingDuplicate,
}

impl RejectReason {
    /// Every reason, in the order of the README.
    pub const ALL: [Self; 16] = [
        Self::InvalidJson,
        Self::MissingField,
        Self::InvalidField,
        Self::UnsupportedSchema,
        Self::BodyTooLarge,
        Self::MissingUserId,
        Self::UnknownPublisher,
        Self::TenantMismatch,
        Self::BadRoutingKey,
        Self::UnsupportedContentType,
        Self::MessageIdMismatch,
        Self::TerminalTenantMismatch,
        Self::StoreRejected,
        Self::DeliveryLimit,
        Self::InvalidBatch,
        Self::ConflictingDuplicate,
    ];

    /// The header value, byte for byte.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::UnsupportedSchema => "unsupported_schema",
            Self::BodyTooLarge => "body_too_large",
            Self::MissingUserId => "missing_user_id",
            Self::UnknownPublisher => "unknown_publisher",
            Self::TenantMismatch => "tenant_mismatch",
            Self::BadRoutingKey => "bad_routing_key",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::MessageIdMismatch => "message_id_mismatch",
            Self::TerminalTenantMismatch => "terminal_tenant_mismatch",
            Self::StoreRejected => "store_rejected",
            Self::DeliveryLimit => "delivery_limit",
            Self::InvalidBatch => "invalid_batch",
            Self::ConflictingDuplicate => "conflicting_duplicate",
        }
    }

    /// The reason a header value names, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header values are fixed surface: this list is the README's, plus §8–§9.
    #[test]
    fn every_reason_has_its_contract_string_and_parses_back() {
        let expected = [
            "invalid_json",
            "missing_field",
            "invalid_field",
            "unsupported_schema",
            "body_too_large",
            "missing_user_id",
            "unknown_publisher",
            "tenant_mismatch",
            "bad_routing_key",
            "unsupported_content_type",
            "message_id_mismatch",
            "terminal_tenant_mismatch",
            "store_rejected",
            "delivery_limit",
            "invalid_batch",
            "conflicting_duplicate",
        ];
        let actual: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(actual, expected);
        for reason in RejectReason::ALL {
            assert_eq!(RejectReason::parse(reason.as_str()), Some(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
        assert_eq!(RejectReason::parse("Invalid_JSON"), None);
        assert_eq!(RejectReason::parse(""), None);
    }

    #[test]
    fn reasons_are_distinct() {
        let distinct: std::collections::HashSet<_> =
            RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(distinct.len(), RejectReason::ALL.len());
    }
}
