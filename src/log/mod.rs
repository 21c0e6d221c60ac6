//! [`Log`]: the writer handle. Appends, group-commit sync, rotation, poisoning, iteration.
//!
//! Durability protocol (FORMAT.md §6):
//!
//! * `append` encodes the records and hands them to the OS with one positional write before it
//!   returns. A returned sequence number therefore always names bytes the OS holds: a process
//!   crash cannot lose them, a power loss can until the next successful `sync`. With a write
//!   buffer, a full buffer is written by a helper thread instead, and everything else that
//!   touches the file waits for that write first (`ahead.rs`).
//! * `sync` is the barrier. Concurrent callers coalesce: one leader fdatasyncs the current
//!   segment for everyone whose records were written before it started; the others wait for it.
//!   Only after the fdatasync returned Ok is the durable watermark raised and written to a slot.
//! * A segment is sealed by an fdatasync, a final watermark slot and another fdatasync; its
//!   successor is created as a temporary file, synced, renamed into place and the directory
//!   synced, all before any record goes into it.
//! * A failed write is truncated back; if that fails, or any fsync fails, the writer is
//!   poisoned: later appends and syncs fail with [`ErrorKind::Poisoned`]. An fsync is never
//!   retried, because after a failure the kernel may report success for data it dropped.

mod ahead;
mod durable;
mod entry;
mod group;
mod index;
mod open;

pub(crate) use open::create_empty_segment;
mod sink;

pub use entry::{Appended, Entry, OpenReport};
use group::SyncState;
pub(crate) use open::random_log_id;
use sink::{OneOrMore, Sink};

use crate::error::{Error, ErrorKind, Result};
use crate::format::{self, RecordKind, RecordMeta, SegmentHeader};
use crate::options::{Options, SyncPolicy};
use crate::recovery;
use crate::report::{Location, Record, Report};
use crate::storage::{StorageFile, StorageLock};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A write-ahead log opened for writing. `Send + Sync`: share it between threads.
pub struct Log {
    dir: PathBuf,
    options: Options,
    log_id: u64,
    log_first_seq: u64,
    state: Mutex<WriteState>,
    sync: Mutex<SyncState>,
    /// `SyncState::durable_seq`, readable without the lock (waiters check it after waking).
    durable: AtomicU64,
    poisoned: AtomicBool,
    poison_cause: Mutex<Option<String>>,
    degraded: AtomicBool,
    opened: OpenReport,
    /// The key/value index, built by the first `get` and kept current by appends after that.
    index: Mutex<Option<crate::kv::KeyIndex>>,
    /// Whether `index` is built, so appends skip its lock until then.
    index_built: AtomicBool,
    // Declared last so it is released after everything else is dropped.
    _lock: Box<dyn StorageLock>,
}

struct WriteState {
    seg: Active,
    /// The sequence number the next append gets (pending records included).
    next_seq: u64,
    /// Encoded records not yet handed to the OS.
    pending: Vec<u8>,
    pending_records: u64,
    /// Whether `pending` holds records of `append_and_sync` callers waiting for a sync.
    pending_deferred: bool,
    /// Whether `pending` holds records still without their checksums (`SEAL_LATER_BELOW`).
    pending_unsealed: bool,
    /// The highest sequence number whose record the OS holds: below the pending records and
    /// the write in flight ([`Log::written_seq`]).
    written_seq: u64,
    /// The write of a full buffer in flight on a helper thread, if any.
    ahead: ahead::Ahead,
}

impl WriteState {
    /// Adds one record of `size` bytes to the pending ones. With a write buffer, short records
    /// get their checksums when the buffer is written (`SEAL_LATER_BELOW`); without one they
    /// are written at once, and a second pass would only add work.
    fn encode(&mut self, meta: RecordMeta, e: &Entry<'_>, size: u64, buffered: bool) {
        if buffered && size < SEAL_LATER_BELOW {
            format::encode_unsealed(&mut self.pending, meta, e.key, e.payload);
            self.pending_unsealed = true;
        } else {
            format::encode_record_seeded(&mut self.pending, self.seg.seed, meta, e.key, e.payload);
        }
    }
}

/// The segment being appended to.
struct Active {
    number: u64,
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    header: SegmentHeader,
    /// Bytes handed to the OS: where the next record goes.
    len: u64,
    /// Whether the segment holds at least one record.
    has_records: bool,
    slot_generation: u64,
    slot_seq: u64,
    /// End of the zeros written ahead (equal to `len` when nothing is preallocated).
    prealloc_end: u64,
    /// Where the bytes not yet handed to early writeback start.
    writeback_from: u64,
    /// The CRC state of the segment's binding (FORMAT.md §5), where every record's checksum
    /// starts: computed once per segment, not per append (a third checksum call per record).
    seed: u32,
}

/// Bytes of deferred `append_and_sync` records held before they are written without waiting
/// for the sync's leader, so many waiting writers cannot grow the buffer without bound.
const DEFERRED_MAX: usize = 1 << 20;

/// Records shorter than this (header included) get their checksums when their buffer is
/// written, by the helper thread if it is idle then (`durable.rs`): for short records the
/// checksum calls, not the bytes, are the cost, and the appender is the busier thread. Longer
/// ones are checksummed as they are encoded, while their bytes are in the cache; a second pass
/// over the buffer would read them again, and there the helper's write is the longer half.
const SEAL_LATER_BELOW: u64 = 512;

/// Bytes written between two early-writeback hints (RocksDB's `bytes_per_sync` idea).
const WRITEBACK_EVERY: u64 = 8 << 20;

impl Log {
    /// Opens (or creates) the log in `dir` for writing.
    ///
    /// Takes the writer lock, fsyncs the last segment and the directory before trusting them,
    /// and scans only the last segment. A torn tail is cut (saved to a side file, journaled) and
    /// reported in [`Log::open_report`]; any other damage there refuses the open.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Locked`], [`ErrorKind::Corrupt`], [`ErrorKind::NotALog`] (missing and
    /// `create` is false), [`ErrorKind::InvalidOptions`], I/O errors.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Log> {
        open::open(dir.as_ref(), options)
    }

    /// What opening found and did.
    #[must_use]
    pub fn open_report(&self) -> &OpenReport {
        &self.opened
    }

    /// The log directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's random identity, shared by all its segments.
    #[must_use]
    pub fn log_id(&self) -> u64 {
        self.log_id
    }

    /// The sequence number the next append will get.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.lock_state().next_seq
    }

    /// The highest sequence number known durable.
    #[must_use]
    pub fn durable_seq(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The highest sequence number whose record the OS holds: a crash of this process can no
    /// longer lose it (a power loss can, until a [`Log::sync`] covers it).
    ///
    /// Without [`Options::write_buffer`] that is every record an append returned. With one,
    /// records still in the buffer or in the write in flight on the helper thread are above
    /// it, and a failed write loses them (the writer is poisoned): a caller that reports
    /// sequence numbers onward, as `walctl append` prints them, reports those up to here.
    /// After [`Log::flush`] succeeded, every appended record is covered.
    #[must_use]
    pub fn written_seq(&self) -> u64 {
        self.lock_state().written_seq
    }

    /// Whether directory fsyncs are unsupported here (new segments less durable).
    #[must_use]
    pub fn durability_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Appends one keyless data record. See [`Log::append_entry`].
    ///
    /// # Errors
    ///
    /// As [`Log::append_entry`].
    pub fn append(&self, payload: &[u8]) -> Result<Appended> {
        self.append_entry(&Entry::data(payload))
    }

    /// Appends one record; returns after the OS has its bytes (durable only after `sync`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::RecordTooLarge`], [`ErrorKind::KeyTooLarge`], [`ErrorKind::Poisoned`], I/O
    /// errors (after which nothing of the record remains in the file).
    pub fn append_entry(&self, entry: &Entry<'_>) -> Result<Appended> {
        // A one-element array, not a Vec: the common case allocates nothing.
        let mut out = OneOrMore::default();
        self.append_into(std::slice::from_ref(entry), None, &mut out, false)?;
        Ok(out.first.expect("one entry appended"))
    }

    /// Appends a record and waits until it is durable.
    ///
    /// # Errors
    ///
    /// As [`Log::append_entry`] and [`Log::sync`].
    pub fn append_and_sync(&self, entry: &Entry<'_>) -> Result<Appended> {
        if self.options.sync_policy == SyncPolicy::EveryAppend {
            return self.append_entry(entry);
        }
        // The record is only encoded here; the sync's leader writes it together with every
        // other waiting record in one write before its fdatasync (group commit, `group.rs`).
        // Nobody is told its sequence number before that sync succeeded, so a failed write
        // poisons instead of handing the numbers out again (`flush_locked`).
        let mut out = OneOrMore::default();
        self.append_into(std::slice::from_ref(entry), None, &mut out, true)?;
        let appended = out.first.expect("one entry appended");
        self.sync_through(appended.seq)?;
        Ok(appended)
    }

    /// Appends many records with as few writes as possible (one per segment touched).
    ///
    /// When `expect_next_seq` is given and the log's next sequence number differs, nothing is
    /// appended and [`ErrorKind::SequenceMismatch`] is returned: retries become idempotent.
    /// On success `out` receives one [`Appended`] per entry. On failure `out` holds the records
    /// that were appended before it (those in segments sealed during the call); the rest are not
    /// in the log.
    ///
    /// # Errors
    ///
    /// As [`Log::append_entry`], plus [`ErrorKind::SequenceMismatch`].
    pub fn append_batch(
        &self,
        entries: &[Entry<'_>],
        expect_next_seq: Option<u64>,
        out: &mut Vec<Appended>,
    ) -> Result<()> {
        self.append_into(entries, expect_next_seq, out, false)
    }

    /// Encodes `entries` and, unless `defer` (the caller syncs next) or a write buffer holds
    /// them, hands them to the OS.
    fn append_into(
        &self,
        entries: &[Entry<'_>],
        expect_next_seq: Option<u64>,
        out: &mut impl Sink,
        defer: bool,
    ) -> Result<()> {
        self.check_poison()?;
        for e in entries {
            self.check_entry(e)?;
        }
        let mut st = self.lock_state();
        if let Some(expected) = expect_next_seq
            && expected != st.next_seq
        {
            return Err(Error::new(ErrorKind::SequenceMismatch {
                expected,
                actual: st.next_seq,
            }));
        }
        let last_needed = st
            .next_seq
            .checked_add(entries.len().saturating_sub(1) as u64);
        if !entries.is_empty() && last_needed.is_none_or(|l| !format::SEQ_RANGE.contains(&l)) {
            return Err(Error::new(ErrorKind::InvalidOptions(
                "the log has used every sequence number (2^64 - 2); nothing was appended".into(),
            )));
        }
        let now = crate::time::now_nanos();
        let first = out.len();
        let mut written = first;
        for e in entries {
            let size = format::encoded_len(e.key.map_or(0, <[u8]>::len), e.payload.len()) as u64;
            let seg_has_data = st.seg.has_records || st.pending_records > 0;
            if seg_has_data
                && st.seg.len + st.pending.len() as u64 + size > self.options.segment_size
            {
                if let Err(err) = self.flush_locked(&mut st) {
                    out.truncate(written);
                    return Err(err);
                }
                written = out.len();
                self.rotate(&mut st)?;
            }
            let meta = RecordMeta {
                seq: st.next_seq,
                timestamp_nanos: e.timestamp_nanos.unwrap_or(now),
                kind: e.kind,
            };
            let offset = st.seg.len + st.pending.len() as u64;
            st.encode(meta, e, size, self.options.write_buffer > 0);
            st.next_seq += 1;
            st.pending_records += 1;
            let location = Location {
                segment: st.seg.number,
                offset,
                length: size as u32,
            };
            out.push(Appended {
                seq: meta.seq,
                location,
            });
        }
        st.pending_deferred |= defer;
        let hold = if defer {
            self.options.write_buffer.max(DEFERRED_MAX)
        } else {
            self.options.write_buffer
        };
        if st.pending.len() >= hold
            && let Err(err) = self.flush_ahead(&mut st)
        {
            out.truncate(written);
            return Err(err);
        }
        if self.index_built.load(Ordering::Acquire) {
            self.index_appended(entries, out.since(first));
        }
        drop(st);
        if self.options.sync_policy == SyncPolicy::EveryAppend {
            self.sync()?;
        }
        Ok(())
    }

    /// Hands buffered appends to the OS (only needed with [`Options::write_buffer`]).
    ///
    /// # Errors
    ///
    /// As a failed write (which, for buffered records, poisons the writer).
    pub fn flush(&self) -> Result<()> {
        self.check_poison()?;
        let mut st = self.lock_state();
        self.flush_locked(&mut st)
    }

    fn check_entry(&self, e: &Entry<'_>) -> Result<()> {
        let key_len = e.key.map_or(0, <[u8]>::len) as u64;
        if key_len > u64::from(self.options.key_size_max) {
            return Err(Error::new(ErrorKind::KeyTooLarge {
                size: key_len,
                size_max: u64::from(self.options.key_size_max),
            }));
        }
        let size = key_len + e.payload.len() as u64;
        if size > u64::from(self.options.record_size_max) {
            return Err(Error::new(ErrorKind::RecordTooLarge {
                size,
                size_max: u64::from(self.options.record_size_max),
            }));
        }
        if e.kind == RecordKind::Tombstone && (e.key.is_none() || !e.payload.is_empty()) {
            return Err(Error::new(ErrorKind::InvalidOptions(
                "a tombstone needs a key and carries no payload".into(),
            )));
        }
        Ok(())
    }

    /// Scans the whole log, delivering every valid record to `visit`; returns the report.
    ///
    /// # Errors
    ///
    /// I/O errors. Damage is in the report.
    pub fn scan(&self, visit: &mut crate::scan::Visit<'_>) -> Result<Report> {
        if !self.is_poisoned() {
            self.flush()?;
        }
        recovery::scan_log(&*self.options.storage, &self.dir, visit)
    }

    /// Every valid record, in order, copied into memory: a convenience for small logs and
    /// tests. Its memory grows with the log; [`Log::scan`] streams instead, holding one
    /// segment mapped at a time.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when the log is damaged (the valid records are not returned then:
    /// use [`Log::scan`] to see them with the damage), I/O errors.
    pub fn records(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let report = self.scan(&mut |r| {
            out.push(r.to_record());
            ControlFlow::Continue(())
        })?;
        if !report.damage.is_empty() {
            return Err(Error::new(ErrorKind::Corrupt {
                summary: report.first_damage_summary(),
            }));
        }
        Ok(out)
    }

    fn poison(&self, cause: String) {
        let mut slot = self
            .poison_cause
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert(cause);
        self.poisoned.store(true, Ordering::SeqCst);
    }

    fn check_poison(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let cause = self
            .poison_cause
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Err(Error::new(ErrorKind::Poisoned {
            cause: cause.clone().unwrap_or_default(),
        }))
    }

    /// Whether an earlier failure poisoned the writer.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    fn lock_state(&self) -> MutexGuard<'_, WriteState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_sync(&self) -> MutexGuard<'_, SyncState> {
        self.sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Log {
    /// On a clean close, hands buffered appends to the OS and, if no slot records the durable
    /// watermark yet, writes one and fdatasyncs it (best effort). A slot the last sync already
    /// wrote is left to reach the disk with the next fdatasync (FORMAT.md §8): syncing it here
    /// would double the cost of every one-shot durable append. Unsynced appends are promised
    /// nothing by this.
    fn drop(&mut self) {
        if self.is_poisoned() {
            return;
        }
        let durable = self.lock_sync().durable_seq;
        let mut st = self.lock_state();
        // Buffered appends are handed to the OS, as a process exit would lose them otherwise.
        let _ = self.flush_locked(&mut st);
        if durable > st.seg.slot_seq
            && durable >= st.seg.header.first_seq
            // Where `durable` ends is not tracked here (rare: the last sync's own slot write
            // was skipped), so the slot leaves it unknown and the next open scans.
            && self.write_slot(&mut st.seg, durable, 0).is_ok()
        {
            let _ = st.seg.file.sync_data();
        }
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_id", &self.log_id)
            .finish_non_exhaustive()
    }
}
