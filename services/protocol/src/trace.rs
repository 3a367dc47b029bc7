//! The W3C Trace Context `traceparent` header that ties a report's trace together
//! across the broker: the agent writes it into the AMQP message headers when it
//! publishes, and ingest reads it to parent its spans on the agent's publish.
//!
//! Written and parsed here, by hand, rather than with the `opentelemetry` crates:
//! the agent has no tracer and no exporter (it only starts a trace), so a 55-byte
//! string is all it needs, and keeping the format in the shared crate means both
//! sides agree on it without the agent paying for a dependency. The service turns a
//! parsed [`TraceParent`] into an OpenTelemetry span context.
//!
//! Format (version `00`): `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`,
//! lower-case hex, neither id all zeros (<https://www.w3.org/TR/trace-context/>).

use std::fmt;
use std::str::FromStr;

/// The AMQP header (and HTTP header) the context travels in.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The `sampled` bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;

/// A valid `traceparent`: a trace id and the id of the span that sent the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

/// Why a `traceparent` value was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TraceParentError {
    #[error("traceparent is not `version-traceid-spanid-flags`")]
    Shape,
    #[error("traceparent holds something other than lower-case hex")]
    NotHex,
    #[error("traceparent version ff is invalid")]
    InvalidVersion,
    #[error("traceparent has an all-zero trace id or span id")]
    ZeroId,
}

impl TraceParent {
    /// A context from its parts; `None` when either id is zero (invalid in W3C).
    pub fn new(trace_id: u128, span_id: u64, flags: u8) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Parses a header value. Versions after `00` are read as `00` when they start
    /// like it, as the spec asks of a version-00 reader.
    pub fn parse(value: &str) -> Result<Self, TraceParentError> {
        let value = value.trim();
        let bytes = value.as_bytes();
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return Err(TraceParentError::Shape);
        }
        // Checked as bytes first: a multi-byte character must not split a slice.
        let version = &bytes[..2];
        if !is_lower_hex(version) {
            return Err(TraceParentError::NotHex);
        }
        if version == b"ff" {
            return Err(TraceParentError::InvalidVersion);
        }
        if version == b"00" && bytes.len() != 55 {
            return Err(TraceParentError::Shape);
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(TraceParentError::Shape);
        }
        let hex = [&bytes[3..35], &bytes[36..52], &bytes[53..55]];
        if !hex.iter().all(|part| is_lower_hex(part)) {
            return Err(TraceParentError::NotHex);
        }
        let (trace, span, flags) = (&value[3..35], &value[36..52], &value[53..55]);
        let trace_id = u128::from_str_radix(trace, 16).map_err(|_| TraceParentError::NotHex)?;
        let span_id = u64::from_str_radix(span, 16).map_err(|_| TraceParentError::NotHex)?;
        let flags = u8::from_str_radix(flags, 16).map_err(|_| TraceParentError::NotHex)?;
        Self::new(trace_id, span_id, flags).ok_or(TraceParentError::ZeroId)
    }
}

fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| matches!(*b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_round_trips() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tp.span_id(), 0x00f067aa0ba902b7);
        assert!(tp.is_sampled());
        assert_eq!(tp.to_string(), EXAMPLE);
    }

    #[test]
    fn invalid_values_are_refused() {
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let zero_span = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        assert_eq!(
            TraceParent::parse(zero_trace),
            Err(TraceParentError::ZeroId)
        );
        assert_eq!(TraceParent::parse(zero_span), Err(TraceParentError::ZeroId));
        assert_eq!(
            TraceParent::parse(&EXAMPLE.to_uppercase()),
            Err(TraceParentError::NotHex)
        );
        assert_eq!(
            TraceParent::parse(&EXAMPLE.replacen("00", "ff", 1)),
            Err(TraceParentError::InvalidVersion)
        );
        assert_eq!(
            TraceParent::parse(&format!("{EXAMPLE}-extra")),
            Err(TraceParentError::Shape)
        );
        assert_eq!(
            TraceParent::parse(&EXAMPLE[..54]),
            Err(TraceParentError::Shape)
        );
        assert_eq!(
            TraceParent::parse(&EXAMPLE.replace('-', "_")),
            Err(TraceParentError::Shape)
        );
    }

    #[test]
    fn a_later_version_is_read_as_00() {
        let v1 = format!("01{}-future", &EXAMPLE[2..]);
        assert_eq!(
            TraceParent::parse(&v1).unwrap(),
            TraceParent::parse(EXAMPLE).unwrap()
        );
    }

    proptest! {
        #[test]
        fn every_valid_context_round_trips(
            trace in 1u128..,
            span in 1u64..,
            flags in any::<u8>(),
        ) {
            let tp = TraceParent::new(trace, span, flags).unwrap();
            let text = tp.to_string();
            prop_assert_eq!(text.len(), 55);
            prop_assert_eq!(TraceParent::parse(&text), Ok(tp));
        }
    }
}
