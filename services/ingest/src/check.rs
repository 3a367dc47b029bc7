//! Checking one delivery before anything is stored: who sent it, for which tenant,
//! and whether the body is a report v1.
//!
//! Every refusal carries a short machine-readable reason (the dead letter's
//! `x-fleet-reject-reason`) and a detail for people.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};
use fleet_protocol::{RejectReason, Report, TenantSlug};
use fleet_store::IncomingReport;

/// Why a message is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RejectReason,
    pub detail: String,
}

impl Refusal {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// The parts of a delivery that decide whether it is accepted.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub routing_key: &'a str,
    pub user_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub message_id: Option<&'a str>,
    /// Earlier deliveries of this message (`x-delivery-count`).
    pub delivery_count: u64,
    pub body: &'a [u8],
}

/// A message delivered this often without being acked keeps failing somewhere (for
/// example it crashes the service): it is dead-lettered instead of tried again.
pub const DELIVERY_LIMIT: u64 = 10;

/// Checks a delivery against the contract; `publishers` maps AMQP users to tenants.
pub fn check(
    envelope: Envelope<'_>,
    publishers: &HashMap<String, TenantSlug>,
    received_at: DateTime<FixedOffset>,
) -> Result<IncomingReport, Refusal> {
    if envelope.delivery_count >= DELIVERY_LIMIT {
        return Err(Refusal::new(
            RejectReason::DeliveryLimit,
            format!(
                "delivered {} times without being acked",
                envelope.delivery_count + 1
            ),
        ));
    }
    if let Some(ct) = envelope.content_type {
        let media = ct.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(Refusal::new(
                RejectReason::UnsupportedContentType,
                format!("content_type {ct:?} is not application/json"),
            ));
        }
    }
    let routed = TenantSlug::from_routing_key(envelope.routing_key).map_err(|_| {
        Refusal::new(
            RejectReason::BadRoutingKey,
            format!(
                "routing key {:?} is not v1.<tenant>.report",
                envelope.routing_key
            ),
        )
    })?;
    let user = match envelope.user_id {
        Some(user) if !user.is_empty() => user,
        _ => {
            return Err(Refusal::new(
                RejectReason::MissingUserId,
                "the message has no user_id property",
            ));
        }
    };
    let Some(tenant) = publishers.get(user) else {
        return Err(Refusal::new(
            RejectReason::UnknownPublisher,
            format!("AMQP user {user:?} publishes for no tenant"),
        ));
    };
    if *tenant != routed {
        return Err(Refusal::new(
            RejectReason::TenantMismatch,
            format!("routing key names tenant {routed}, but user {user:?} publishes for {tenant}"),
        ));
    }
    let report =
        Report::parse(envelope.body).map_err(|e| Refusal::new(e.reject_reason(), e.to_string()))?;
    if let Some(id) = envelope.message_id {
        let expected = report.message_id();
        if id != expected {
            return Err(Refusal::new(
                RejectReason::MessageIdMismatch,
                format!("message_id {id:?} is not <terminal_id>/<seq> = {expected:?}"),
            ));
        }
    }
    // Kept verbatim; Report::parse refused a body that is not UTF-8.
    let body = std::str::from_utf8(envelope.body)
        .map_err(|e| {
            Refusal::new(
                RejectReason::InvalidJson,
                format!("the body is not UTF-8: {e}"),
            )
        })?
        .to_owned();
    Ok(IncomingReport {
        tenant: tenant.clone(),
        report,
        body,
        received_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        br#"{"schema":"fleet.report.v1","terminal_id":"0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11",
        "seq":7,"observed_at":"2026-01-20T07:12:00+09:00","clinic_code":"2712345678"}"#;

    fn publishers() -> HashMap<String, TenantSlug> {
        [("guest".to_owned(), TenantSlug::parse("demo").unwrap())].into()
    }

    fn envelope() -> Envelope<'static> {
        Envelope {
            routing_key: "v1.demo.report",
            user_id: Some("guest"),
            content_type: Some("application/json"),
            message_id: Some("0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11/7"),
            delivery_count: 0,
            body: BODY,
        }
    }

    fn reason(e: Envelope<'_>) -> RejectReason {
        check(e, &publishers(), fleet_store::now_jst())
            .unwrap_err()
            .reason
    }

    #[test]
    fn accepts_a_well_formed_delivery() {
        let ok = check(envelope(), &publishers(), fleet_store::now_jst()).unwrap();
        assert_eq!(ok.tenant.as_str(), "demo");
        assert_eq!(ok.report.seq, 7);
        let lenient = Envelope {
            content_type: Some("application/json; charset=utf-8"),
            message_id: None,
            ..envelope()
        };
        assert!(check(lenient, &publishers(), fleet_store::now_jst()).is_ok());
    }

    #[test]
    fn refuses_with_the_contract_reasons() {
        assert_eq!(
            reason(Envelope {
                user_id: None,
                ..envelope()
            }),
            RejectReason::MissingUserId
        );
        assert_eq!(
            reason(Envelope {
                user_id: Some("mallory"),
                ..envelope()
            }),
            RejectReason::UnknownPublisher
        );
        assert_eq!(
            reason(Envelope {
                routing_key: "v1.other.report",
                ..envelope()
            }),
            RejectReason::TenantMismatch
        );
        assert_eq!(
            reason(Envelope {
                routing_key: "v1.BAD.report",
                ..envelope()
            }),
            RejectReason::BadRoutingKey
        );
        assert_eq!(
            reason(Envelope {
                content_type: Some("text/plain"),
                ..envelope()
            }),
            RejectReason::UnsupportedContentType
        );
        assert_eq!(
            reason(Envelope {
                message_id: Some("x/1"),
                ..envelope()
            }),
            RejectReason::MessageIdMismatch
        );
        assert_eq!(
            reason(Envelope {
                body: b"{",
                ..envelope()
            }),
            RejectReason::InvalidJson
        );
    }
}
