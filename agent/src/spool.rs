//! The on-disk spool: every report is written here before it is published, and leaves
//! only when the broker confirmed it. Terminals are switched off at the wall without
//! warning, so the spool is built for a hard power-off from the start.
//!
//! # Layout
//!
//! A directory of append-only *segments*, `<id>.seg` with a 20-digit decimal id that
//! only grows. New records go to the newest segment (the *active* one) until it
//! passes `segment_bytes`; then a new one starts. Files are created `0640`, the
//! directory `0750`.
//!
//! Each segment is a sequence of records, all integers little-endian:
//!
//! ```text
//! offset  size  field
//! 0       4     len    length of the body (kind .. end of payload), ≤ MAX_BODY
//! 4       4     crc    CRC-32 (IEEE) of the 4 len bytes followed by the body
//! 8       1     kind   1 = report, 2 = ack
//! 9       1     flags  bit 0: essential (reader errors or a state change)
//! 10      8     seq    report: its seq; ack: every report with seq ≤ this is confirmed
//! 18      len-10 payload  report: the exact message body (JSON); ack: empty
//! ```
//!
//! The CRC covers the length too, so a torn or zero-filled length is caught as well
//! as a torn body.
//!
//! # Invariants
//!
//! 1. **A record is yielded only if its checksum matches.** Opening scans every
//!    segment; at the first record that is short, too long, of unknown kind or fails
//!    its CRC, the segment is truncated there (a torn tail from a crash mid-write) and
//!    the bytes after it are never interpreted. [`Spool::front`] checks the CRC again
//!    when it reads a payload back, so later bit rot is not published either.
//! 2. **Reports are appended in strictly increasing `seq`**, and acknowledgements are
//!    cumulative: an ack record for `n` confirms every report with `seq ≤ n`. Delivery
//!    is oldest first, so this is exact.
//! 3. **A segment is deleted only when every record in it is acknowledged** (or was
//!    dropped under the size limit, below). Deletion only ever removes the *oldest*
//!    segments, so an ack record (always written to the active segment, which holds
//!    the newest reports) never outlives the reports it refers to being deleted
//!    before it, and never goes missing while they exist.
//! 4. **Durability follows the fsync policy**: `always` syncs every append and ack
//!    before returning, `interval` at most that long after a write, `never` leaves it
//!    to the OS. A segment's first sync also syncs the directory, so the file itself
//!    survives. Deletions, truncations and rewrites are synced whatever the policy.
//!    An ack lost in a crash only means the report is sent again with the same
//!    `message_id`, which the service ignores. Opening syncs every segment, so
//!    whatever a reopened spool holds is durable, whatever the policy was before.
//! 5. **Bounded size**: when an append would take the spool over `max_bytes`, the
//!    oldest *heartbeats* (reports not flagged essential) are dropped, oldest first,
//!    by rewriting their segments without them (write a temporary file, fsync,
//!    rename, fsync the directory: a crash leaves the old or the new segment, never a
//!    mix). Essential reports are never dropped: if only they are left, the spool
//!    grows past its limit and says so in the log. A heartbeat that does not fit even
//!    then is itself dropped. Every drop is counted ([`Spool::dropped`]).
//!
//! File access goes through [`Storage`] so that tests can model crashes: see
//! [`MemStorage`], which keeps what was synced apart from what was only written.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes before the body: `len` and `crc`.
pub const HEADER_BYTES: usize = 8;
/// Bytes of the body before the payload: `kind`, `flags`, `seq`.
pub const BODY_PREFIX_BYTES: usize = 10;
/// The longest body accepted; a longer `len` is corruption. Reports are at most
/// 64 KiB, so this leaves room without letting a torn length claim gigabytes.
pub const MAX_BODY: usize = 1024 * 1024;
/// An ack record's size on disk.
pub const ACK_RECORD_BYTES: u64 = (HEADER_BYTES + BODY_PREFIX_BYTES) as u64;

const KIND_REPORT: u8 = 1;
const KIND_ACK: u8 = 2;
const FLAG_ESSENTIAL: u8 = 1;

/// CRC-32 (IEEE 802.3, the one of zip and PNG), table-driven. Small enough to keep
/// rather than take a dependency for.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for part in parts {
        for &byte in *part {
            crc = TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
        }
    }
    !crc
}

/// When written data is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before every append or ack returns: nothing acknowledged by the spool is lost.
    Always,
    /// At most this long after a write (checked on each write and by the daemon's
    /// ticks): a power cut loses at most that window.
    Interval(Duration),
    /// Left to the operating system.
    Never,
}

/// Sizes and durability of a spool.
#[derive(Debug, Clone, Copy)]
pub struct SpoolConfig {
    /// Above this, heartbeats are dropped (see invariant 5).
    pub max_bytes: u64,
    /// A segment that reaches this size is closed and a new one started.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            // Some 20,000 reports of ~1.5 KiB: about two weeks at one a minute.
            max_bytes: 32 * 1024 * 1024,
            segment_bytes: 1024 * 1024,
            fsync: FsyncPolicy::Always,
        }
    }
}

/// What the spool needs from a directory of segment files. Implemented by
/// [`DiskStorage`] and, for crash tests, [`MemStorage`].
pub trait Storage: Send {
    /// The ids of the segments that exist, in any order.
    fn list(&mut self) -> io::Result<Vec<u64>>;
    /// A whole segment.
    fn read(&mut self, id: u64) -> io::Result<Vec<u8>>;
    /// `len` bytes of a segment from `offset`.
    fn read_at(&mut self, id: u64, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Appends to a segment, creating it if needed. Not durable until [`Self::sync`].
    fn append(&mut self, id: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended to the segment durable, and the segment's existence.
    fn sync(&mut self, id: u64) -> io::Result<()>;
    /// Cuts a segment to `len` bytes, durably.
    fn truncate(&mut self, id: u64, len: u64) -> io::Result<()>;
    /// Replaces a segment's content atomically and durably.
    fn replace(&mut self, id: u64, bytes: &[u8]) -> io::Result<()>;
    /// Deletes a segment, durably.
    fn remove(&mut self, id: u64) -> io::Result<()>;
}

/// Why the spool failed. An I/O error leaves the spool consistent: a failed append is
/// as if it never happened once the spool is reopened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool I/O ({what}): {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("seq {seq} is not after the newest spooled report {last}")]
    OutOfOrder { seq: u64, last: u64 },
    #[error("the payload is {0} bytes, over the spool's record limit")]
    TooLarge(usize),
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> SpoolError {
    move |source| SpoolError::Io { what, source }
}

/// One report read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    /// Carries reader errors or a state change: never dropped under the size limit.
    pub essential: bool,
    /// The message body, byte for byte as it was appended.
    pub payload: Vec<u8>,
}

/// What an append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// `false`: the record was a heartbeat that did not fit, and was dropped itself.
    pub stored: bool,
    /// Older heartbeats dropped to make room, by `seq`.
    pub dropped: Vec<u64>,
}

/// What opening found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    /// Reports waiting for a confirm.
    pub pending: usize,
    /// Bytes cut off torn or corrupt segment tails.
    pub truncated_bytes: u64,
}

/// Where a live (unconfirmed) report sits.
#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: u64,
    offset: u64,
    /// The whole record, header included.
    len: u64,
    essential: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Segment {
    bytes: u64,
    /// Live reports in it.
    live: usize,
    /// Written since its last sync.
    dirty: bool,
}

/// A parsed record, as found by [`scan`].
#[derive(Debug, Clone, Copy)]
struct Found {
    offset: u64,
    len: u64,
    kind: u8,
    flags: u8,
    seq: u64,
}

/// Parses records from the start of a segment until the first invalid one. Returns
/// them and the length of the valid prefix.
fn scan(bytes: &[u8]) -> (Vec<Found>, u64) {
    let mut found = Vec::new();
    let mut pos = 0usize;
    while let Some(header) = bytes.get(pos..pos + HEADER_BYTES) {
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if !(BODY_PREFIX_BYTES..=MAX_BODY).contains(&len) {
            break;
        }
        let start = pos + HEADER_BYTES;
        let Some(body) = bytes.get(start..start + len) else {
            break;
        };
        if crc32(&[&len_bytes, body]) != crc {
            break;
        }
        let kind = body[0];
        if kind != KIND_REPORT && kind != KIND_ACK {
            break;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&body[2..10]);
        found.push(Found {
            offset: pos as u64,
            len: (HEADER_BYTES + len) as u64,
            kind,
            flags: body[1],
            seq: u64::from_le_bytes(seq),
        });
        pos = start + len;
    }
    (found, pos as u64)
}

/// Encodes one record.
fn encode(kind: u8, flags: u8, seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = (BODY_PREFIX_BYTES + payload.len()) as u32;
    let mut body = Vec::with_capacity(HEADER_BYTES + len as usize);
    body.extend_from_slice(&len.to_le_bytes());
    body.extend_from_slice(&[0; 4]);
    body.push(kind);
    body.push(flags);
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(payload);
    let crc = crc32(&[&body[..4], &body[HEADER_BYTES..]]);
    body[4..8].copy_from_slice(&crc.to_le_bytes());
    body
}

/// The spool over some [`Storage`].
pub struct Spool<S: Storage> {
    storage: S,
    config: SpoolConfig,
    /// Live reports by seq, oldest first.
    live: BTreeMap<u64, Entry>,
    segments: BTreeMap<u64, Segment>,
    /// The id the next new segment gets.
    next_segment: u64,
    /// The newest seq ever appended or acknowledged (appends must go above it).
    last_seq: Option<u64>,
    /// Heartbeats dropped under the size limit since this spool was opened.
    dropped: u64,
    /// When the oldest unsynced write happened (interval policy).
    unsynced_since: Option<Instant>,
}

impl Spool<DiskStorage> {
    /// Opens (creating if needed) the spool in `dir`.
    pub fn open_dir(dir: &Path, config: SpoolConfig) -> Result<(Self, Recovery), SpoolError> {
        let storage = DiskStorage::open(dir).map_err(io_err("opening the spool directory"))?;
        Self::open(storage, config)
    }
}

impl<S: Storage> Spool<S> {
    /// Opens the spool: scans every segment, truncates torn tails, deletes segments
    /// that hold nothing unconfirmed.
    pub fn open(mut storage: S, config: SpoolConfig) -> Result<(Self, Recovery), SpoolError> {
        let mut ids = storage.list().map_err(io_err("listing segments"))?;
        ids.sort_unstable();
        let mut recovery = Recovery::default();
        let mut reports: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut acked: Option<u64> = None;
        let mut segments = BTreeMap::new();
        let mut last_seq: Option<u64> = None;
        for &id in &ids {
            let bytes = storage.read(id).map_err(io_err("reading a segment"))?;
            let (found, valid) = scan(&bytes);
            if valid < bytes.len() as u64 {
                let cut = bytes.len() as u64 - valid;
                tracing::warn!(
                    segment = id,
                    valid_bytes = valid,
                    cut_bytes = cut,
                    "spool segment has a torn or corrupt tail; truncating it"
                );
                storage
                    .truncate(id, valid)
                    .map_err(io_err("truncating a torn segment"))?;
                recovery.truncated_bytes += cut;
            }
            for f in found {
                match f.kind {
                    KIND_REPORT => {
                        // Strictly increasing; anything else cannot come from us.
                        if last_seq.is_some_and(|last| f.seq <= last) {
                            tracing::warn!(
                                seq = f.seq,
                                "out-of-order report in the spool; ignored"
                            );
                            continue;
                        }
                        last_seq = Some(f.seq);
                        reports.insert(
                            f.seq,
                            Entry {
                                segment: id,
                                offset: f.offset,
                                len: f.len,
                                essential: f.flags & FLAG_ESSENTIAL != 0,
                            },
                        );
                    }
                    _ => acked = acked.max(Some(f.seq)),
                }
            }
            // Dirty: a previous process may have left bytes in the page cache only.
            segments.insert(
                id,
                Segment {
                    bytes: valid,
                    live: 0,
                    dirty: true,
                },
            );
        }
        if let Some(acked) = acked {
            reports.retain(|seq, _| *seq > acked);
            last_seq = last_seq.max(Some(acked));
        }
        for entry in reports.values() {
            if let Some(segment) = segments.get_mut(&entry.segment) {
                segment.live += 1;
            }
        }
        let next_segment = ids.last().map_or(1, |id| id + 1);
        let mut spool = Self {
            storage,
            config,
            live: reports,
            segments,
            next_segment,
            last_seq,
            dropped: 0,
            unsynced_since: None,
        };
        spool.delete_confirmed_prefix()?;
        spool.sync()?;
        recovery.segments = spool.segments.len();
        recovery.pending = spool.live.len();
        Ok((spool, recovery))
    }

    /// Reports waiting for a confirm.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Their seqs, oldest first.
    pub fn pending_seqs(&self) -> Vec<u64> {
        self.live.keys().copied().collect()
    }

    /// Bytes on disk over all segments.
    pub fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }

    /// Segments on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Heartbeats dropped under the size limit since opening.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The newest seq appended or acknowledged, as far as the spool remembers.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Where a live report ends in its segment: `(segment, end offset)`. For tests
    /// that cut segments at chosen bytes.
    #[doc(hidden)]
    pub fn locate(&self, seq: u64) -> Option<(u64, u64)> {
        self.live.get(&seq).map(|e| (e.segment, e.offset + e.len))
    }

    /// The segment ids, oldest first (tests).
    #[doc(hidden)]
    pub fn segment_ids(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// Gives the storage back (tests that crash and reopen it).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Writes a report. Durable on return under `FsyncPolicy::Always`.
    pub fn append(
        &mut self,
        seq: u64,
        essential: bool,
        payload: &[u8],
    ) -> Result<Appended, SpoolError> {
        if let Some(last) = self.last_seq
            && seq <= last
        {
            return Err(SpoolError::OutOfOrder { seq, last });
        }
        if BODY_PREFIX_BYTES + payload.len() > MAX_BODY {
            return Err(SpoolError::TooLarge(payload.len()));
        }
        let record = encode(
            KIND_REPORT,
            if essential { FLAG_ESSENTIAL } else { 0 },
            seq,
            payload,
        );
        let mut outcome = Appended::default();
        let needed = record.len() as u64;
        if self.bytes() + needed > self.config.max_bytes {
            outcome.dropped = self.make_room(needed)?;
            if self.bytes() + needed > self.config.max_bytes {
                if !essential {
                    tracing::warn!(
                        seq,
                        spool_bytes = self.bytes(),
                        max_bytes = self.config.max_bytes,
                        "spool full of essential reports: this heartbeat is dropped"
                    );
                    self.dropped += 1;
                    self.last_seq = Some(seq);
                    return Ok(outcome);
                }
                tracing::error!(
                    seq,
                    spool_bytes = self.bytes(),
                    max_bytes = self.config.max_bytes,
                    "spool over its limit with reports that are never dropped; keeping them"
                );
            }
        }
        let segment = self.active_segment(needed);
        self.storage
            .append(segment, &record)
            .map_err(io_err("appending a report"))?;
        let entry = self.segments.entry(segment).or_default();
        let offset = entry.bytes;
        entry.bytes += needed;
        entry.live += 1;
        entry.dirty = true;
        self.live.insert(
            seq,
            Entry {
                segment,
                offset,
                len: needed,
                essential,
            },
        );
        self.last_seq = Some(seq);
        self.after_write()?;
        outcome.stored = true;
        Ok(outcome)
    }

    /// The oldest unconfirmed report, its checksum verified again. A record that no
    /// longer matches (the disk changed under us) is skipped with an error in the
    /// log, never returned.
    pub fn front(&mut self) -> Result<Option<Record>, SpoolError> {
        while let Some((&seq, &entry)) = self.live.iter().next() {
            let bytes = self
                .storage
                .read_at(entry.segment, entry.offset, entry.len as usize)
                .map_err(io_err("reading a report back"))?;
            let (found, valid) = scan(&bytes);
            match found.first() {
                Some(f) if valid == entry.len && f.kind == KIND_REPORT && f.seq == seq => {
                    let start = HEADER_BYTES + BODY_PREFIX_BYTES;
                    return Ok(Some(Record {
                        seq,
                        essential: entry.essential,
                        payload: bytes[start..].to_vec(),
                    }));
                }
                _ => {
                    tracing::error!(
                        seq,
                        segment = entry.segment,
                        "spooled report no longer matches its checksum; skipped"
                    );
                    self.forget(seq);
                }
            }
        }
        Ok(None)
    }

    /// Records that the broker confirmed every report up to `seq`.
    pub fn ack_through(&mut self, seq: u64) -> Result<(), SpoolError> {
        let confirmed: Vec<u64> = self.live.range(..=seq).map(|(s, _)| *s).collect();
        if confirmed.is_empty() {
            return Ok(());
        }
        for s in &confirmed {
            self.forget(*s);
        }
        self.last_seq = self.last_seq.max(Some(seq));
        // Ack records go to the active segment (invariant 3). When nothing is left,
        // every segment goes, and the ack with them.
        if self.live.is_empty() {
            return self.delete_confirmed_prefix();
        }
        let record = encode(KIND_ACK, 0, seq, &[]);
        let segment = self.active_segment(record.len() as u64);
        self.storage
            .append(segment, &record)
            .map_err(io_err("appending an ack"))?;
        let entry = self.segments.entry(segment).or_default();
        entry.bytes += record.len() as u64;
        entry.dirty = true;
        self.after_write()?;
        self.delete_confirmed_prefix()
    }

    /// Forces everything written to disk.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        let dirty: Vec<u64> = self
            .segments
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(id, _)| *id)
            .collect();
        for id in dirty {
            self.storage.sync(id).map_err(io_err("syncing a segment"))?;
            if let Some(segment) = self.segments.get_mut(&id) {
                segment.dirty = false;
            }
        }
        self.unsynced_since = None;
        Ok(())
    }

    /// Under `FsyncPolicy::Interval`, syncs if the oldest unsynced write is that old.
    pub fn sync_if_due(&mut self) -> Result<(), SpoolError> {
        match (self.config.fsync, self.unsynced_since) {
            (FsyncPolicy::Interval(every), Some(since)) if since.elapsed() >= every => self.sync(),
            _ => Ok(()),
        }
    }

    fn after_write(&mut self) -> Result<(), SpoolError> {
        match self.config.fsync {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Interval(_) => {
                self.unsynced_since.get_or_insert_with(Instant::now);
                self.sync_if_due()
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    /// The segment the next record of `len` bytes goes to.
    fn active_segment(&mut self, len: u64) -> u64 {
        match self.segments.iter().next_back() {
            Some((&id, segment))
                if segment.bytes == 0 || segment.bytes + len <= self.config.segment_bytes =>
            {
                id
            }
            _ => {
                // The closed segment is synced when its turn comes (policy); a new
                // segment starts empty and is created by its first append.
                let id = self.next_segment;
                self.next_segment += 1;
                self.segments.insert(id, Segment::default());
                id
            }
        }
    }

    fn forget(&mut self, seq: u64) {
        if let Some(entry) = self.live.remove(&seq)
            && let Some(segment) = self.segments.get_mut(&entry.segment)
        {
            segment.live = segment.live.saturating_sub(1);
        }
    }

    /// Deletes the oldest segments while they hold no live report (invariant 3).
    fn delete_confirmed_prefix(&mut self) -> Result<(), SpoolError> {
        while let Some((&id, segment)) = self.segments.iter().next() {
            if segment.live > 0 {
                break;
            }
            // Never-created segments (no bytes) are only in memory.
            if segment.bytes > 0 || segment.dirty {
                self.storage
                    .remove(id)
                    .map_err(io_err("deleting a confirmed segment"))?;
            }
            self.segments.remove(&id);
        }
        Ok(())
    }

    /// Drops the oldest heartbeats until `needed` more bytes fit, rewriting their
    /// segments. Returns their seqs.
    fn make_room(&mut self, needed: u64) -> Result<Vec<u64>, SpoolError> {
        let excess = (self.bytes() + needed).saturating_sub(self.config.max_bytes);
        let mut freed = 0u64;
        let mut victims = Vec::new();
        for (&seq, entry) in &self.live {
            if freed >= excess {
                break;
            }
            if !entry.essential {
                freed += entry.len;
                victims.push(seq);
            }
        }
        if victims.is_empty() {
            return Ok(victims);
        }
        let mut touched: Vec<u64> = victims
            .iter()
            .filter_map(|seq| self.live.get(seq).map(|e| e.segment))
            .collect();
        touched.dedup();
        for seq in &victims {
            self.forget(*seq);
        }
        for id in touched {
            self.rewrite_segment(id)?;
        }
        self.delete_confirmed_prefix()?;
        self.dropped += victims.len() as u64;
        tracing::warn!(
            count = victims.len(),
            oldest = victims.first(),
            newest = victims.last(),
            "spool full: dropped the oldest heartbeat reports"
        );
        Ok(victims)
    }

    /// Rewrites a segment keeping its live reports and its ack records.
    fn rewrite_segment(&mut self, id: u64) -> Result<(), SpoolError> {
        let bytes = self
            .storage
            .read(id)
            .map_err(io_err("reading a segment to rewrite"))?;
        let (found, _) = scan(&bytes);
        let mut kept = Vec::with_capacity(bytes.len());
        let mut moved = Vec::new();
        for f in found {
            let keep = match f.kind {
                KIND_REPORT => self.live.get(&f.seq).is_some_and(|e| e.segment == id),
                _ => true,
            };
            if keep {
                if f.kind == KIND_REPORT {
                    moved.push((f.seq, kept.len() as u64));
                }
                let range = f.offset as usize..(f.offset + f.len) as usize;
                kept.extend_from_slice(&bytes[range]);
            }
        }
        self.storage
            .replace(id, &kept)
            .map_err(io_err("rewriting a segment"))?;
        for (seq, offset) in moved {
            if let Some(entry) = self.live.get_mut(&seq) {
                entry.offset = offset;
            }
        }
        if let Some(segment) = self.segments.get_mut(&id) {
            segment.bytes = kept.len() as u64;
            segment.dirty = false;
        }
        Ok(())
    }
}

/// Segments as files in a directory.
pub struct DiskStorage {
    dir: PathBuf,
    /// The segment being appended to, kept open.
    open: Option<(u64, File)>,
    /// Segments created since the directory was last synced.
    new_files: Vec<u64>,
    /// Test knob: write appends in pieces of this many bytes, so that a process
    /// killed mid-append leaves a torn record behind (`tests/agent/spool_kill.rs`).
    chunk: Option<usize>,
}

impl DiskStorage {
    /// Opens `dir` (created `0750` if missing) and removes leftover temporary files
    /// of an interrupted rewrite.
    pub fn open(dir: &Path) -> io::Result<Self> {
        create_private_dir(dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path)?;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            open: None,
            new_files: Vec::new(),
            chunk: None,
        })
    }

    /// Splits every append into writes of `bytes` (torn-write tests only).
    #[doc(hidden)]
    pub fn with_write_chunks(mut self, bytes: usize) -> Self {
        self.chunk = Some(bytes.max(1));
        self
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.seg"))
    }

    fn close_if(&mut self, id: u64) {
        if self.open.as_ref().is_some_and(|(open, _)| *open == id) {
            self.open = None;
        }
    }

    fn file(&mut self, id: u64) -> io::Result<&mut File> {
        if self.open.as_ref().is_none_or(|(open, _)| *open != id) {
            let path = self.path(id);
            let existed = path.exists();
            let file = create_options().append(true).open(&path)?;
            if !existed {
                self.new_files.push(id);
            }
            self.open = Some((id, file));
        }
        match &mut self.open {
            Some((_, file)) => Ok(file),
            None => Err(io::Error::other("segment not open")),
        }
    }
}

fn create_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    options
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o750))?;
    }
    Ok(())
}

/// Makes renames, creations and deletions in `dir` durable (the spool's segments and
/// the seq file's atomic rename). On Windows NTFS journals them and directories cannot
/// be opened for sync.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

impl Storage for DiskStorage {
    fn list(&mut self) -> io::Result<Vec<u64>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn read(&mut self, id: u64) -> io::Result<Vec<u8>> {
        fs::read(self.path(id))
    }

    fn read_at(&mut self, id: u64, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut file = File::open(self.path(id))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0; len];
        file.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn append(&mut self, id: u64, bytes: &[u8]) -> io::Result<()> {
        let chunk = self.chunk;
        let file = self.file(id)?;
        match chunk {
            Some(size) => {
                for piece in bytes.chunks(size) {
                    file.write_all(piece)?;
                }
                Ok(())
            }
            None => file.write_all(bytes),
        }
    }

    fn sync(&mut self, id: u64) -> io::Result<()> {
        if let Some((open, file)) = &self.open
            && *open == id
        {
            file.sync_data()?;
        } else {
            File::open(self.path(id))?.sync_data()?;
        }
        if self.new_files.contains(&id) {
            sync_dir(&self.dir)?;
            self.new_files.retain(|f| *f != id);
        }
        Ok(())
    }

    fn truncate(&mut self, id: u64, len: u64) -> io::Result<()> {
        self.close_if(id);
        let file = OpenOptions::new().write(true).open(self.path(id))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn replace(&mut self, id: u64, bytes: &[u8]) -> io::Result<()> {
        self.close_if(id);
        let tmp = self.dir.join(format!("{id:020}.seg.tmp"));
        {
            let mut file = create_options().write(true).truncate(true).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, self.path(id))?;
        self.new_files.retain(|f| *f != id);
        sync_dir(&self.dir)
    }

    fn remove(&mut self, id: u64) -> io::Result<()> {
        self.close_if(id);
        match fs::remove_file(self.path(id)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        self.new_files.retain(|f| *f != id);
        sync_dir(&self.dir)
    }
}

/// Segments in memory, with what a power cut would keep modelled apart: each
/// segment has the bytes written and the prefix of them that was synced. Truncation,
/// rewrite and removal are durable at once, as [`DiskStorage`] makes them.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    /// id → (written, synced length)
    pub files: BTreeMap<u64, (Vec<u8>, usize)>,
    /// Segments created and never synced: a power cut may lose them entirely.
    pub unsynced_new: Vec<u64>,
}

impl MemStorage {
    /// A power cut: each segment keeps its synced bytes plus the first
    /// `keep(id, unsynced)` of the bytes written after them; a segment never synced
    /// since it was created keeps at most that too (possibly nothing).
    pub fn crash(&mut self, mut keep: impl FnMut(u64, usize) -> usize) {
        for (id, (bytes, synced)) in &mut self.files {
            let unsynced = bytes.len() - *synced;
            let kept = keep(*id, unsynced).min(unsynced);
            bytes.truncate(*synced + kept);
            *synced = bytes.len();
        }
        self.unsynced_new.clear();
    }

    /// Cuts a segment at any byte, as a torn write would.
    pub fn cut(&mut self, id: u64, len: usize) {
        if let Some((bytes, synced)) = self.files.get_mut(&id) {
            bytes.truncate(len);
            *synced = (*synced).min(len);
        }
    }
}

fn not_found(id: u64) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("segment {id}"))
}

impl Storage for MemStorage {
    fn list(&mut self) -> io::Result<Vec<u64>> {
        Ok(self.files.keys().copied().collect())
    }

    fn read(&mut self, id: u64) -> io::Result<Vec<u8>> {
        self.files
            .get(&id)
            .map(|(b, _)| b.clone())
            .ok_or_else(|| not_found(id))
    }

    fn read_at(&mut self, id: u64, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let (bytes, _) = self.files.get(&id).ok_or_else(|| not_found(id))?;
        bytes
            .get(offset as usize..offset as usize + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    fn append(&mut self, id: u64, bytes: &[u8]) -> io::Result<()> {
        if !self.files.contains_key(&id) {
            self.unsynced_new.push(id);
        }
        self.files.entry(id).or_default().0.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self, id: u64) -> io::Result<()> {
        let (bytes, synced) = self.files.get_mut(&id).ok_or_else(|| not_found(id))?;
        *synced = bytes.len();
        self.unsynced_new.retain(|f| *f != id);
        Ok(())
    }

    fn truncate(&mut self, id: u64, len: u64) -> io::Result<()> {
        self.cut(id, len as usize);
        Ok(())
    }

    fn replace(&mut self, id: u64, bytes: &[u8]) -> io::Result<()> {
        self.files.insert(id, (bytes.to_vec(), bytes.len()));
        self.unsynced_new.retain(|f| *f != id);
        Ok(())
    }

    fn remove(&mut self, id: u64) -> io::Result<()> {
        self.files.remove(&id);
        self.unsynced_new.retain(|f| *f != id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_bytes: u64, segment_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            max_bytes,
            segment_bytes,
            fsync: FsyncPolicy::Always,
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b""]), 0);
    }

    #[test]
    fn records_round_trip_and_acks_delete_whole_segments_only() {
        let (mut spool, _) = Spool::open(MemStorage::default(), config(1 << 20, 200)).unwrap();
        for seq in 1..=6 {
            spool
                .append(seq, false, format!("report {seq}").as_bytes())
                .unwrap();
        }
        // 200-byte segments hold 6 records of ~26 bytes... several segments.
        let segments = spool.segment_count();
        assert!(segments >= 1);
        assert_eq!(spool.front().unwrap().unwrap().payload, b"report 1");
        spool.ack_through(3).unwrap();
        assert_eq!(spool.pending_seqs(), [4, 5, 6]);
        let storage = spool.into_storage();
        let (mut spool, recovery) = Spool::open(storage, config(1 << 20, 200)).unwrap();
        assert_eq!(recovery.pending, 3);
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(spool.front().unwrap().unwrap().seq, 4);
        spool.ack_through(6).unwrap();
        assert!(spool.is_empty());
        assert!(
            spool.into_storage().files.is_empty(),
            "all confirmed: no segment left"
        );
    }

    #[test]
    fn segments_roll_over_and_are_deleted_oldest_first() {
        let (mut spool, _) = Spool::open(MemStorage::default(), config(1 << 20, 100)).unwrap();
        for seq in 0..10 {
            spool.append(seq, false, &[b'x'; 40]).unwrap();
        }
        assert_eq!(
            spool.segment_count(),
            10,
            "one 58-byte record per 100-byte segment"
        );
        spool.ack_through(4).unwrap();
        assert_eq!(
            spool.segment_ids().first(),
            Some(&6),
            "the ack went to segment 10"
        );
        let storage = spool.into_storage();
        assert_eq!(storage.files.len(), 5);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let (mut spool, _) = Spool::open(MemStorage::default(), config(1 << 20, 1 << 20)).unwrap();
        spool.append(1, false, b"first").unwrap();
        spool.append(2, true, b"second").unwrap();
        let mut storage = spool.into_storage();
        let (bytes, _) = storage.files.get_mut(&1).unwrap();
        let full = bytes.len();
        // Every cut inside the second record loses exactly it.
        let first_len = HEADER_BYTES + BODY_PREFIX_BYTES + 5;
        for cut in first_len..full {
            let mut torn = storage.clone();
            torn.cut(1, cut);
            let (mut spool, recovery) = Spool::open(torn, config(1 << 20, 1 << 20)).unwrap();
            assert_eq!(spool.pending_seqs(), [1], "cut at {cut}");
            assert_eq!(recovery.truncated_bytes, (cut - first_len) as u64);
            assert_eq!(spool.front().unwrap().unwrap().payload, b"first");
            // And appending after the cut works.
            spool.append(3, false, b"third").unwrap();
            let (spool, _) = Spool::open(spool.into_storage(), config(1 << 20, 1 << 20)).unwrap();
            assert_eq!(spool.pending_seqs(), [1, 3]);
        }
    }

    #[test]
    fn a_flipped_bit_is_never_yielded() {
        let (mut spool, _) = Spool::open(MemStorage::default(), config(1 << 20, 1 << 20)).unwrap();
        spool.append(1, false, b"{\"seq\":1}").unwrap();
        let storage = spool.into_storage();
        let len = storage.files[&1].0.len();
        for at in 0..len {
            for bit in 0..8 {
                let mut bad = storage.clone();
                bad.files.get_mut(&1).unwrap().0[at] ^= 1 << bit;
                let (mut spool, _) = Spool::open(bad, config(1 << 20, 1 << 20)).unwrap();
                assert!(spool.front().unwrap().is_none(), "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn full_spool_drops_old_heartbeats_never_essential_reports() {
        // Room for about 10 records of 58 bytes.
        let (mut spool, _) = Spool::open(MemStorage::default(), config(600, 200)).unwrap();
        let mut dropped = Vec::new();
        for seq in 0..40u64 {
            let essential = seq % 5 == 0;
            let out = spool.append(seq, essential, &[b'r'; 40]).unwrap();
            dropped.extend(out.dropped);
            assert!(spool.bytes() <= 600 || spool.pending_seqs().iter().all(|s| s % 5 == 0));
        }
        let kept = spool.pending_seqs();
        for seq in (0..40).filter(|s| s % 5 == 0) {
            assert!(kept.contains(&seq), "essential {seq} kept: {kept:?}");
        }
        assert!(dropped.iter().all(|s| s % 5 != 0), "{dropped:?}");
        assert!(spool.dropped() >= dropped.len() as u64 && !dropped.is_empty());
        assert!(
            kept.contains(&39),
            "the newest heartbeat is kept when there is room"
        );
        let (reopened, _) = Spool::open(spool.into_storage(), config(600, 200)).unwrap();
        assert_eq!(reopened.pending_seqs(), kept, "drops are durable");
    }

    #[test]
    fn appends_must_be_in_order() {
        let (mut spool, _) = Spool::open(MemStorage::default(), SpoolConfig::default()).unwrap();
        spool.append(5, false, b"x").unwrap();
        assert!(matches!(
            spool.append(5, false, b"y"),
            Err(SpoolError::OutOfOrder { seq: 5, last: 5 })
        ));
        spool.ack_through(5).unwrap();
        let (spool, _) = Spool::open(spool.into_storage(), SpoolConfig::default()).unwrap();
        assert!(spool.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn disk_segments_are_0640_and_survive_reopen() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fleet-spool-{}", uuid::Uuid::new_v4()));
        let (mut spool, _) = Spool::open_dir(&dir, SpoolConfig::default()).unwrap();
        spool.append(1, true, b"payload").unwrap();
        let file = dir.join(format!("{:020}.seg", 1));
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        drop(spool);
        fs::write(dir.join("00000000000000000001.seg.tmp"), b"junk").unwrap();
        let (mut spool, recovery) = Spool::open_dir(&dir, SpoolConfig::default()).unwrap();
        assert_eq!(recovery.pending, 1);
        assert!(!dir.join("00000000000000000001.seg.tmp").exists());
        assert_eq!(spool.front().unwrap().unwrap().payload, b"payload");
        fs::remove_dir_all(&dir).unwrap();
    }
}
