//! Fuzzes the report parser the ingest consumer runs on every message body.
//!
//! Invariants checked, beyond "never panics":
//! - whatever parses serialises back to JSON that parses to the same report, so the
//!   history the service stores can always be read back;
//! - a body over 64 KiB is always refused.
#![no_main]

use fleet_protocol::Report;
use fleet_protocol::report::MAX_BODY_BYTES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Report::parse(data) {
        Ok(report) => {
            assert!(data.len() <= MAX_BODY_BYTES);
            let again = Report::parse(&report.to_json()).expect("a parsed report round-trips");
            assert_eq!(again, report);
            let _ = report.message_id();
        }
        Err(err) => {
            // The reason is what the dead-letter header carries: never empty.
            assert!(!err.reason().is_empty());
        }
    }
});
