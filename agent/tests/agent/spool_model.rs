//! The spool against a simple model, under random appends, confirms, syncs, clean
//! reopens, power cuts (unsynced bytes partly kept) and segments cut at any byte.
//!
//! The model is a map seq → (payload, essential, durable). After every reopen:
//! every record the spool yields is byte for byte one that was appended under that
//! seq (never a corrupt or invented one), in increasing seq order; every record that
//! was durable, not confirmed and not in a cut-off region is still there; and an
//! essential record is never dropped for space.

use std::collections::{BTreeMap, BTreeSet};

use fleet_agent::spool::{FsyncPolicy, MemStorage, Spool, SpoolConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        len: usize,
        essential: bool,
    },
    AckFront,
    AckTwo,
    Sync,
    Reopen,
    /// Power cut: each segment keeps this share (‰) of its unsynced bytes.
    Crash {
        keep_permille: u16,
    },
    /// A segment (chosen by index modulo the count) cut at a byte (‰ of its length).
    Cut {
        segment: usize,
        at_permille: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300, any::<bool>()).prop_map(|(len, essential)| Op::Append { len, essential }),
        3 => Just(Op::AckFront),
        1 => Just(Op::AckTwo),
        2 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => (0u16..=1000).prop_map(|keep_permille| Op::Crash { keep_permille }),
        1 => (0usize..8, 0u16..=1000).prop_map(|(segment, at_permille)| Op::Cut { segment, at_permille }),
    ]
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut bytes = format!("{{\"seq\":{seq},\"fill\":\"").into_bytes();
    bytes.extend((0..len).map(|i| b'a' + ((seq as usize * 31 + i) % 26) as u8));
    bytes.extend_from_slice(b"\"}");
    bytes
}

#[derive(Debug, Clone)]
struct Expected {
    payload: Vec<u8>,
    essential: bool,
    /// Synced since appended: must survive a crash.
    durable: bool,
    /// Confirmed. Until its ack is durable too it may come back after a crash, and
    /// a cut through an ack record may bring it back at any time (it is then resent
    /// under the same message_id): it stays in the model, only no longer required.
    acked: bool,
}

fn config(fsync: FsyncPolicy, max_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        max_bytes,
        segment_bytes: 700,
        fsync,
    }
}

/// Reopens and checks the spool against the model; returns the reopened spool.
fn reopen_and_check(
    storage: MemStorage,
    cfg: SpoolConfig,
    model: &mut BTreeMap<u64, Expected>,
    may_lose: &BTreeSet<u64>,
) -> Result<Spool<MemStorage>, TestCaseError> {
    let copy = storage.clone();
    let (spool, _) =
        Spool::open(storage, cfg).map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
    let present = spool.pending_seqs();
    prop_assert!(present.windows(2).all(|w| w[0] < w[1]), "order {present:?}");
    for seq in &present {
        prop_assert!(
            model.contains_key(seq),
            "seq {seq} yielded but never appended (or dropped)"
        );
    }
    for (seq, expected) in model.iter() {
        if expected.durable && !expected.acked && !may_lose.contains(seq) {
            prop_assert!(
                present.contains(seq),
                "durable seq {seq} lost; present {present:?}"
            );
        }
    }
    // Read every record back, on a copy so that the real spool keeps them.
    let (mut reader, _) =
        Spool::open(copy, cfg).map_err(|e| TestCaseError::fail(format!("reopen copy: {e}")))?;
    let mut read = Vec::new();
    while let Some(record) = reader
        .front()
        .map_err(|e| TestCaseError::fail(format!("front: {e}")))?
    {
        let expected = &model[&record.seq];
        prop_assert_eq!(
            &record.payload,
            &expected.payload,
            "payload of {}",
            record.seq
        );
        prop_assert_eq!(record.essential, expected.essential);
        read.push(record.seq);
        reader
            .ack_through(record.seq)
            .map_err(|e| TestCaseError::fail(format!("ack: {e}")))?;
    }
    prop_assert_eq!(
        &read,
        &present,
        "front() yields exactly the pending records"
    );
    // The model follows the spool: present records are pending again, durable now
    // (reopening truncates and keeps only what is on disk); absent ones are gone.
    for (seq, expected) in model.iter_mut() {
        if present.contains(seq) {
            expected.acked = false;
            expected.durable = true;
        } else {
            expected.acked = true;
            expected.durable = true;
        }
    }
    Ok(spool)
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn run(ops: Vec<Op>, fsync: FsyncPolicy, max_bytes: u64) -> Result<(), TestCaseError> {
    let cfg = config(fsync, max_bytes);
    let (mut spool, _) = Spool::open(MemStorage::default(), cfg).map_err(fail)?;
    let mut model: BTreeMap<u64, Expected> = BTreeMap::new();
    let mut next_seq = 0u64;
    for op in ops {
        match op {
            Op::Append { len, essential } => {
                next_seq += 1;
                let body = payload(next_seq, len);
                let out = spool.append(next_seq, essential, &body).map_err(fail)?;
                for dropped in &out.dropped {
                    let gone = model.remove(dropped);
                    prop_assert!(
                        gone.is_some_and(|g| !g.essential),
                        "dropped {dropped} was essential or unknown"
                    );
                }
                if out.stored {
                    model.insert(
                        next_seq,
                        Expected {
                            payload: body,
                            essential,
                            durable: fsync == FsyncPolicy::Always,
                            acked: false,
                        },
                    );
                } else {
                    prop_assert!(!essential, "an essential report was refused");
                }
                prop_assert_eq!(
                    spool.pending_seqs(),
                    model
                        .iter()
                        .filter(|(_, e)| !e.acked)
                        .map(|(s, _)| *s)
                        .collect::<Vec<_>>()
                );
            }
            Op::AckFront | Op::AckTwo => {
                let n = if matches!(op, Op::AckTwo) { 2 } else { 1 };
                let seqs = spool.pending_seqs();
                if let Some(&through) = seqs.get(n - 1).or(seqs.last()) {
                    // Read it back first, as the daemon does.
                    let front = spool.front().map_err(fail)?;
                    prop_assert_eq!(front.map(|r| r.seq), seqs.first().copied());
                    spool.ack_through(through).map_err(fail)?;
                    for (_, e) in model.range_mut(..=through) {
                        e.acked = true;
                    }
                }
            }
            Op::Sync => {
                spool.sync().map_err(fail)?;
                for e in model.values_mut() {
                    e.durable = true;
                }
            }
            Op::Reopen => {
                // A clean stop: the page cache survives, nothing is lost.
                let storage = spool.into_storage();
                for e in model.values_mut() {
                    e.durable = true;
                }
                let pending: Vec<u64> = model
                    .iter()
                    .filter(|(_, e)| !e.acked)
                    .map(|(s, _)| *s)
                    .collect();
                spool = reopen_and_check(storage, cfg, &mut model, &BTreeSet::new())?;
                prop_assert_eq!(spool.pending_seqs(), pending);
            }
            Op::Crash { keep_permille } => {
                let mut storage = spool.into_storage();
                storage.crash(|_, unsynced| unsynced * usize::from(keep_permille) / 1000);
                spool = reopen_and_check(storage, cfg, &mut model, &BTreeSet::new())?;
            }
            Op::Cut {
                segment,
                at_permille,
            } => {
                let ids = spool.segment_ids();
                if ids.is_empty() {
                    continue;
                }
                let id = ids[segment % ids.len()];
                let locations: Vec<(u64, u64, u64)> = spool
                    .pending_seqs()
                    .iter()
                    .filter_map(|s| spool.locate(*s).map(|(seg, end)| (*s, seg, end)))
                    .collect();
                let mut storage = spool.into_storage();
                let len = storage.files.get(&id).map_or(0, |(bytes, _)| bytes.len());
                let at = len * usize::from(at_permille) / 1000;
                storage.cut(id, at);
                // Records of that segment ending past the cut may be lost; no other.
                let may_lose: BTreeSet<u64> = locations
                    .iter()
                    .filter(|(_, seg, end)| *seg == id && *end as usize > at)
                    .map(|(s, _, _)| *s)
                    .collect();
                // The cut models a torn file, not a lost page cache: the rest of
                // what was written is on disk.
                for e in model.values_mut() {
                    e.durable = true;
                }
                spool = reopen_and_check(storage, cfg, &mut model, &may_lose)?;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn spool_matches_the_model_with_fsync_always(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, FsyncPolicy::Always, 1 << 30)?;
    }

    #[test]
    fn spool_matches_the_model_with_fsync_never(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, FsyncPolicy::Never, 1 << 30)?;
    }

    #[test]
    fn spool_under_its_size_limit_drops_only_heartbeats(ops in proptest::collection::vec(op(), 1..150)) {
        run(ops, FsyncPolicy::Always, 3000)?;
    }
}
