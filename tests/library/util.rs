//! Helpers shared by the library tests: building logs in memory and reading them back.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use walctl::storage::{DirSync, LockKind, MemStorage, OpenMode, Storage, StorageFile, StorageLock};
use walctl::{Log, Options, Record, Report};

/// The log directory used in memory.
pub fn dir() -> PathBuf {
    PathBuf::from("/log")
}

/// Options on `storage` with the smallest segments, so tests rotate often.
pub fn options(storage: &MemStorage) -> Options {
    Options {
        segment_size: 16 << 10,
        ..Options::with_storage(Arc::new(storage.clone()))
    }
}

/// The key numbered `k` in the key/value tests: `key-<k>`.
pub fn key(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

/// A payload that differs per sequence number and length.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize * 131 + i * 7) as u8)
        .collect()
}

/// Appends `count` records of `len` bytes; returns their sequence numbers.
pub fn append_n(log: &Log, count: u64, len: usize) -> Vec<u64> {
    (0..count)
        .map(|_| {
            let seq = log.next_seq();
            log.append(&payload(seq, len)).expect("append").seq
        })
        .collect()
}

/// Scans the log, returning the report and every record delivered.
pub fn scan(storage: &dyn Storage, dir: &Path) -> (Report, Vec<Record>) {
    let (report, records) = scan_only(storage, dir);
    // The parallel verifier must reach exactly the same report, damage and all.
    let parallel = walctl::verify_log(storage, dir).expect("verify");
    assert_eq!(parallel, report, "verify_log and scan_log disagree");
    (report, records)
}

/// [`scan`] without the cross-check against `verify_log`, for sweeps of many thousands of states.
pub fn scan_only(storage: &dyn Storage, dir: &Path) -> (Report, Vec<Record>) {
    let mut records = Vec::new();
    let report = walctl::scan_log(storage, dir, &mut |r| {
        records.push(r.to_record());
        ControlFlow::Continue(())
    })
    .expect("scan");
    assert_times(&report, &records);
    (report, records)
}

/// The report's timestamps, of the log and of each segment, are those of the records delivered
/// (in order: each segment's `records` of them; a segment whose header names another number
/// delivers records located under that number).
fn assert_times(report: &Report, records: &[Record]) {
    let range = |of: &[Record]| {
        let all = || of.iter().map(|r| r.timestamp_nanos);
        Some(walctl::TimeRange {
            first: all().next()?,
            last: all().next_back()?,
            min: all().min()?,
            max: all().max()?,
        })
    };
    assert_eq!(report.times, range(records), "the log's times");
    let mut rest = records;
    for s in &report.segments {
        let (these, more) = rest.split_at(s.records as usize);
        assert_eq!(s.times, range(these), "the times of segment {}", s.segment);
        rest = more;
    }
}

/// A log in memory with `count` synced records of `len` bytes, closed cleanly.
pub fn built(count: u64, len: usize) -> MemStorage {
    let storage = MemStorage::new();
    let log = Log::open(dir(), plain(&storage)).expect("open");
    append_n(&log, count, len);
    log.sync().expect("sync");
    drop(log);
    storage
}

/// A compaction that drops the records below `seq`.
pub fn before(seq: u64) -> walctl::Compaction {
    walctl::Compaction {
        before: Some(seq),
        ..walctl::Compaction::default()
    }
}

/// Segment files of the log in `storage`, ascending.
pub fn segments(storage: &MemStorage) -> Vec<PathBuf> {
    storage
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect()
}

/// Checks that `records` are exactly the records 1..=n with the payloads `append_n` wrote.
pub fn assert_prefix(records: &[Record], len: usize) {
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.seq,
            i as u64 + 1,
            "sequence numbers are contiguous from 1"
        );
        assert_eq!(
            r.payload,
            payload(r.seq, len),
            "payload of {} unaltered",
            r.seq
        );
    }
}

/// Every file of the log but the lock files (whose existence is not data), with its bytes.
pub fn data_files(storage: &MemStorage) -> Vec<(PathBuf, Vec<u8>)> {
    storage
        .files()
        .into_iter()
        .filter(|p| !p.ends_with("LOCK") && !p.ends_with("READERS"))
        .map(|p| {
            let bytes = storage.file_bytes(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

/// [`options`] without preallocation, for tests that edit the bytes at the end of a segment.
pub fn plain(storage: &MemStorage) -> Options {
    Options {
        preallocate: 0,
        ..options(storage)
    }
}

/// Runs `op` on copies of `base`, once for each storage operation it performs, with every
/// operation from that one on failing (EIO), and hands `check` each of the three crash states
/// (`KeepAll`, `DropUnsynced`, `Torn`) of what it left, with the failing operation's index.
pub fn crash_at_every_operation(
    base: &MemStorage,
    op: impl Fn(&MemStorage),
    mut check: impl FnMut(u64, walctl::storage::CrashMode, &MemStorage),
) {
    use walctl::storage::{CrashMode, Fault};
    let total = {
        let s = base.crash(CrashMode::KeepAll);
        let start = s.op_count();
        op(&s);
        s.op_count() - start
    };
    for stop in 0..total {
        let s = base.crash(CrashMode::KeepAll);
        let start = s.op_count();
        s.set_faults(Some(Box::new(move |o| {
            (o.index >= start + stop).then_some(Fault::Errno(5))
        })));
        op(&s);
        s.set_faults(None);
        for mode in [
            CrashMode::KeepAll,
            CrashMode::DropUnsynced,
            CrashMode::Torn { seed: stop },
        ] {
            check(stop, mode, &s.crash(mode));
        }
    }
}

/// The first step of every crash oracle: the log never reads as corrupt, and a writer reopens
/// it. Returns the reopened log with its records, or `None` where no segment survived (the
/// first segment's creation never became durable), after checking nothing was acknowledged.
pub fn reopen_after_crash(
    storage: &MemStorage,
    opts: Options,
    acked: u64,
    what: &str,
) -> Option<(Log, Vec<Record>)> {
    if !storage
        .files()
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "wal"))
    {
        assert_eq!(
            acked, 0,
            "{what}: acknowledged records vanished with the first segment"
        );
        return None;
    }
    let (report, _) = scan_only(storage, &dir());
    assert_ne!(
        report.verdict(),
        walctl::Verdict::Corrupt,
        "{what}: {:?}",
        report.damage
    );
    let log = Log::open(dir(), opts).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    let records = log.records().unwrap_or_else(|e| panic!("{what}: {e}"));
    Some((log, records))
}

/// `(seq, payload length)` of each record, after checking every payload is the one
/// [`payload`] wrote for its sequence number: the shape the crash oracles compare.
pub fn seqs_and_lengths(records: &[Record], what: &str) -> Vec<(u64, usize)> {
    records
        .iter()
        .map(|r| {
            assert_eq!(
                r.payload,
                payload(r.seq, r.payload.len()),
                "{what}: payload of {}",
                r.seq
            );
            (r.seq, r.payload.len())
        })
        .collect()
}

/// Rewrites the bytes of one file of `storage`.
pub fn edit(storage: &MemStorage, path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = storage.file_bytes(path).expect("the file exists");
    f(&mut bytes);
    storage.set_file_bytes(path, bytes);
}

/// One segment of log 77 crafted byte by byte: header with `first_seq` (also the log's first),
/// an optional watermark slot, and one-byte records with the given sequence numbers.
pub fn crafted_segment(
    number: u64,
    first_seq: u64,
    watermark: Option<u64>,
    seqs: &[u64],
) -> Vec<u8> {
    crafted_later_segment(number, (first_seq, first_seq), watermark, seqs)
}

/// [`crafted_segment`] for a segment after the log's first: `(first_seq, log_first_seq)`.
pub fn crafted_later_segment(
    number: u64,
    starts: (u64, u64),
    watermark: Option<u64>,
    seqs: &[u64],
) -> Vec<u8> {
    crafted_segment_flagged(number, starts, 0, watermark, seqs)
}

/// [`crafted_later_segment`] with the header flags `flags` (`SEGMENT_FLAG_COMPACTED`, ...).
pub fn crafted_segment_flagged(
    number: u64,
    (first_seq, log_first_seq): (u64, u64),
    flags: u32,
    watermark: Option<u64>,
    seqs: &[u64],
) -> Vec<u8> {
    use walctl::format::{
        self, RecordKind, RecordMeta, SEGMENT_DATA_START, SegmentHeader, WatermarkSlot,
    };
    let header = SegmentHeader {
        version: format::FORMAT_VERSION,
        flags,
        log_id: 77,
        segment: number,
        first_seq,
        log_first_seq,
        created_nanos: 0,
    };
    let mut bytes = header.encode().to_vec();
    bytes.resize(SEGMENT_DATA_START as usize, 0);
    if let Some(w) = watermark {
        let slot = WatermarkSlot {
            durable_seq: w,
            generation: 1,
            durable_end: 0, // unknown: open scans the whole segment, as these cases need
        }
        .encode(77, number);
        bytes[8192..8192 + slot.len()].copy_from_slice(&slot);
    }
    for &seq in seqs {
        let meta = RecordMeta {
            seq,
            timestamp_nanos: 1,
            kind: RecordKind::Data,
        };
        format::encode_record(&mut bytes, &format::binding(77, number), meta, None, b"x");
    }
    bytes
}

/// A one-segment log made of [`crafted_segment`] number 1.
pub fn crafted(first_seq: u64, watermark: Option<u64>, seqs: &[u64]) -> MemStorage {
    let storage = MemStorage::new();
    storage.create_dir_all(&dir()).expect("mkdir");
    storage.set_file_bytes(
        &dir().join("00000000000000000001.wal"),
        crafted_segment(1, first_seq, watermark, seqs),
    );
    storage
}

/// What a [`Hooked`] storage does besides delegating to its `MemStorage`: the cases no
/// `Fault` expresses, because the operation succeeds and something else happens too.
pub trait Hooks: Send + Sync + std::fmt::Debug + 'static {
    /// Runs after a rename to `to` succeeded.
    fn after_rename(&self, _inner: &MemStorage, _to: &Path) {}
    /// Runs before `path` is opened with `mode`.
    fn before_open(&self, _inner: &MemStorage, _path: &Path, _mode: OpenMode) {}
    /// Runs before an exclusive creation of the directory `dir` (another process's move).
    fn before_create_dir(&self, _inner: &MemStorage, _dir: &Path) {}
    /// What a successful directory fsync reports.
    fn dir_sync(&self, synced: DirSync) -> DirSync {
        synced
    }
    /// Whether this lock attempt is answered `WouldBlock` before `MemStorage` sees it, as a
    /// lock lent to a forked child is.
    fn refuse_lock(&self, _path: &Path, _kind: LockKind) -> bool {
        false
    }
    /// Whether the storage says its locks can outlive their holder, as the file system does.
    fn lends_locks(&self) -> bool {
        false
    }
}

/// A `MemStorage` with [`Hooks`]; clones of the inner storage see everything it does.
#[derive(Debug)]
pub struct Hooked<H> {
    inner: MemStorage,
    hooks: H,
}

impl<H: Hooks> Hooked<H> {
    /// The storage to put in `Options`.
    pub fn storage(inner: &MemStorage, hooks: H) -> Arc<dyn Storage> {
        Arc::new(Hooked {
            inner: inner.clone(),
            hooks,
        })
    }
}

impl<H: Hooks> Storage for Hooked<H> {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    // Delegated although the trait has defaults: the wrapper must not trade MemStorage's
    // exclusive creation for the default's check-then-create.
    fn create_dir_new(&self, dir: &Path) -> std::io::Result<()> {
        self.hooks.before_create_dir(&self.inner, dir);
        self.inner.create_dir_new(dir)
    }
    fn locks_outlive_their_holder(&self) -> bool {
        self.inner.locks_outlive_their_holder() || self.hooks.lends_locks()
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Arc<dyn StorageFile>> {
        self.hooks.before_open(&self.inner, path, mode);
        self.inner.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)?;
        self.hooks.after_rename(&self.inner, to);
        Ok(())
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<DirSync> {
        Ok(self.hooks.dir_sync(self.inner.sync_dir(dir)?))
    }
    fn try_lock(&self, path: &Path, kind: LockKind) -> std::io::Result<Box<dyn StorageLock>> {
        if self.hooks.refuse_lock(path, kind) {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        self.inner.try_lock(path, kind)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}
