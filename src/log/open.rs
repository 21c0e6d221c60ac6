//! Opening a log for writing: creation, recovery of the last segment, and segment creation.
//!
//! Open trusts nothing it has not synced (FORMAT.md §6.3): it fsyncs the last segment and the
//! directory before reading, so a decision such as "this tail is torn, cut it" never rests on
//! page-cache data that a power loss could still undo. Only the last segment is scanned; the
//! sealed ones were synced before their successor existed.

use super::{Active, Log, OpenReport, SyncState, WriteState};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{self, FORMAT_VERSION, SEGMENT_DATA_START, SEGMENT_FILE_LIMIT, SegmentHeader};
use crate::options::Options;
use crate::repair::{self, TailCut};
use crate::scan;
use crate::segment::{self, Listing, temp_name};
use crate::storage::{DirSync, OpenMode, Storage, read_vec};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub(super) fn open(dir: &Path, options: Options) -> Result<Log> {
    format::check_limits(
        options.record_size_max,
        options.key_size_max,
        options.segment_size,
    )?;
    let storage = Arc::clone(&options.storage);
    let storage = &*storage;
    let mut opened = OpenReport::default();
    if !storage.exists(dir) {
        if !options.create {
            return Err(Error::not_a_log(dir, "the directory does not exist"));
        }
        let created = repair::missing_dirs(storage, dir);
        storage
            .create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
        note(&mut opened, repair::sync_parents(storage, &created)?);
    }
    let lock = repair::acquire_lock(storage, dir, &options)?;
    crate::compact::install::ensure_readers_lock(storage, dir)?;
    opened.compaction = crate::compact::install::resolve(storage, dir)?
        .map(crate::compact::install::Resolved::as_str);
    let listing = segment::list(storage, dir)?;
    for &n in &listing.temps {
        let path = dir.join(temp_name(n));
        storage
            .remove(&path)
            .map_err(|e| Error::io("remove", &path, e))?;
        opened.removed_temps.push(temp_name(n));
    }
    if !listing.temps.is_empty() {
        note(&mut opened, repair::sync_dir(storage, dir)?);
    }
    let (seg, next_seq) = match listing.segments.last() {
        None if !options.create => return Err(Error::not_a_log(dir, "it holds no segment files")),
        None => {
            opened.created = true;
            let header = new_header(random_log_id(), 1, 1, 1, options.preallocate > 0);
            (create_segment(storage, dir, &header, &mut opened)?, 1)
        }
        Some(&last) => recover_last(storage, dir, last, &mut opened)?,
    };
    let durable_seq = next_seq - 1;
    let log = Log {
        dir: dir.to_path_buf(),
        log_id: seg.header.log_id,
        log_first_seq: seg.header.log_first_seq,
        state: Mutex::new(WriteState {
            seg,
            next_seq,
            pending: Vec::new(),
            pending_records: 0,
            pending_deferred: false,
            pending_unsealed: false,
            written_seq: next_seq - 1,
            ahead: Default::default(),
        }),
        sync: Mutex::new(SyncState::new(durable_seq)),
        durable: AtomicU64::new(durable_seq),
        poisoned: AtomicBool::new(false),
        poison_cause: Mutex::new(None),
        degraded: AtomicBool::new(opened.durability_degraded),
        opened,
        index: Mutex::new(None),
        index_built: AtomicBool::new(false),
        options,
        _lock: lock,
    };
    log.prove_durable(durable_seq)?;
    Ok(log)
}

fn note(opened: &mut OpenReport, sync: DirSync) {
    if sync == DirSync::Unsupported {
        opened.durability_degraded = true;
    }
}

fn new_header(
    log_id: u64,
    segment: u64,
    first_seq: u64,
    log_first_seq: u64,
    preallocated: bool,
) -> SegmentHeader {
    SegmentHeader {
        version: FORMAT_VERSION,
        flags: if preallocated {
            format::SEGMENT_FLAG_PREALLOCATED
        } else {
            0
        },
        log_id,
        segment,
        first_seq,
        log_first_seq,
        created_nanos: crate::time::now_nanos(),
    }
}

pub(crate) fn random_log_id() -> u64 {
    let mut bytes = [0u8; 8];
    // The id only needs to differ between logs; the clock is a fine fallback.
    if getrandom::fill(&mut bytes).is_err() {
        return crate::time::now_nanos() ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(bytes)
}

/// Fsyncs, scans and (for a torn tail) cuts the last segment; returns it ready for appends.
fn recover_last(
    storage: &dyn Storage,
    dir: &Path,
    number: u64,
    opened: &mut OpenReport,
) -> Result<(Active, u64)> {
    let path = Listing::path(dir, number);
    let file = storage
        .open(&path, OpenMode::ReadWrite)
        .map_err(|e| Error::io("open", &path, e))?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync", &path, e))?;
    note(opened, repair::sync_dir(storage, dir)?);
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    if len > SEGMENT_FILE_LIMIT {
        return Err(corrupt(
            &path,
            SEGMENT_FILE_LIMIT,
            &format!(
                "the file is {len} bytes, more than any segment can hold ({SEGMENT_FILE_LIMIT})"
            ),
        ));
    }
    let preamble = read_vec(&*file, 0, len.min(SEGMENT_DATA_START), SEGMENT_DATA_START)
        .map_err(|e| Error::io("read", &path, e))?;
    let header = last_header(&preamble, number, len, &path)?;
    let s = scan_last(&*file, &preamble, &header, len, &path, opened)?;
    let last_good = s.last_seq.unwrap_or(header.first_seq - 1);
    let watermark = s.durable_seq.unwrap_or(0).max(header.first_seq - 1);
    let mut len = len;
    if let Some((offset, why, _)) = scan::check_preamble(&preamble, &header, false, s.last_seq) {
        return Err(corrupt(&path, offset, &why));
    }
    if let Some(first) = s.damage.first() {
        // The same rule as the decision table (recovery.rs): damage that starts beyond the
        // durable watermark is a torn tail, however many unacknowledged records lie past it.
        let last_good = first.last_good_seq.unwrap_or(header.first_seq - 1);
        if watermark > last_good {
            let why = format!(
                "{}; sequence numbers up to {watermark} were acknowledged durable",
                first.detail
            );
            return Err(corrupt(&path, first.offset, &why));
        }
        let plan = TailCut {
            segment: number,
            offset: s.valid_len,
            length: len - s.valid_len,
            sha256: String::new(),
            side_file: String::new(),
            last_seq: first.last_good_seq,
            records_lost: s.records - first.records_before,
            durability_degraded: false,
        };
        // A refused directory fsync is already in `opened`: this open synced the directory.
        opened.cut = Some(repair::cut_tail(
            storage,
            dir,
            &*file,
            plan,
            "writer open after a crash",
        )?);
        len = s.valid_len;
        return Ok((
            active(number, path, file, header, len, &s, last_good),
            last_good + 1,
        ));
    } else if header.is_preallocated() {
        // The zeros after the data are the preallocation; appends go right after the data.
        let prealloc_end = len;
        let mut seg = active(number, path, file, header, s.valid_len, &s, last_good);
        seg.prealloc_end = prealloc_end;
        if watermark > last_good {
            let why = format!(
                "sequence numbers up to {watermark} were acknowledged durable, but the log ends at {last_good}"
            );
            return Err(corrupt(&seg.path, s.valid_len, &why));
        }
        return Ok((seg, last_good + 1));
    } else if watermark > last_good {
        let why = format!(
            "sequence numbers up to {watermark} were acknowledged durable, but the log ends at {last_good}"
        );
        return Err(corrupt(&path, s.valid_len, &why));
    }
    Ok((
        active(number, path, file, header, len, &s, last_good),
        last_good + 1,
    ))
}

/// The last segment's header, from its preamble; a newer version is an error, not damage.
fn last_header(preamble: &[u8], number: u64, len: u64, path: &Path) -> Result<SegmentHeader> {
    match SegmentHeader::decode(preamble) {
        Ok(h) if h.segment == number && len >= SEGMENT_DATA_START => Ok(h),
        Ok(_) => Err(damaged(path)),
        Err(fault) => Err(fault.unsupported(path).unwrap_or_else(|| damaged(path))),
    }
}

fn damaged(path: &Path) -> Error {
    corrupt(path, 0, "the last segment's header is damaged")
}

/// Scans the last segment: only its tail when its slot says where the durable records end
/// ([`resume`]), the whole of it otherwise.
fn scan_last(
    file: &dyn crate::storage::StorageFile,
    preamble: &[u8],
    header: &SegmentHeader,
    len: u64,
    path: &Path,
    opened: &mut OpenReport,
) -> Result<scan::SegmentScan> {
    if let Some((s, read)) =
        resume(file, preamble, header, len).map_err(|e| Error::io("read", path, e))?
    {
        opened.tail_scanned = read;
        return Ok(s);
    }
    // Mapped, not copied: the writer lock keeps every other walctl process from truncating the
    // file, and the mapping is gone before a torn tail is cut (mmap.rs contract). Reading a
    // full 64 MiB segment into a buffer cost most of a one-record append's time.
    let bytes = file.contents().map_err(|e| Error::io("read", path, e))?;
    opened.tail_scanned = len - SEGMENT_DATA_START;
    Ok(scan::scan_segment(&bytes, header, &mut |_| {
        ControlFlow::Continue(())
    }))
}

/// The most of the last segment open reads when its watermark slot says where the durable
/// records end: past that, open maps and scans the whole segment instead.
const RESUME_TAIL_MAX: u64 = 4 << 20;

/// Finds the end of the last segment without reading what the newest watermark slot vouches
/// for (FORMAT.md §6.3): scans only from the slot's `durable_end` (version 2) to the end of the
/// file. Returns the scan and the bytes read, or `None` when the whole segment must be scanned
/// instead: a version 1 segment, no slot or no end in it, an end that does not fit the file, a
/// long unsynced tail, or any damage in the tail, which the whole-segment scan then classifies
/// with everything in view.
///
/// What this does not do is re-check the records the slot vouches for: they were on stable
/// storage before the slot was written, and damage to them since is what `verify` reports.
fn resume(
    file: &dyn crate::storage::StorageFile,
    preamble: &[u8],
    header: &SegmentHeader,
    len: u64,
) -> std::io::Result<Option<(scan::SegmentScan, u64)>> {
    if header.version < format::FORMAT_VERSION_DURABLE_END || header.is_compacted() {
        return Ok(None);
    }
    let Some(slot) = scan::read_watermark(preamble, header) else {
        return Ok(None);
    };
    let (end, seq) = (slot.durable_end, slot.durable_seq);
    let none_durable = header.first_seq - 1;
    // The slot is only evidence, and a crafted one can hold any numbers under a valid CRC:
    // `durable_seq` must be a sequence number (fuzzing found 2^64 - 1 overflowing the next
    // one), and the records it claims must fit in the bytes before `durable_end`, at least a
    // header each.
    let fits = (end == SEGMENT_DATA_START && seq == none_durable)
        || (end > SEGMENT_DATA_START
            && seq > none_durable
            && format::SEQ_RANGE.contains(&seq)
            && (seq - none_durable).saturating_mul(format::RECORD_HEADER_SIZE as u64)
                <= end - SEGMENT_DATA_START);
    if !fits || end > len || len - end > RESUME_TAIL_MAX {
        return Ok(None);
    }
    let tail = read_vec(file, end, len - end, RESUME_TAIL_MAX)?;
    let from = scan::Resume {
        offset: end,
        last_seq: seq,
    };
    let s = scan::scan_records(
        &tail,
        from,
        header,
        Some(slot),
        scan::Reach::EndOfFile,
        &mut |_| ControlFlow::Continue(()),
    );
    Ok(s.damage.is_empty().then_some((s, len - end)))
}

fn active(
    number: u64,
    path: std::path::PathBuf,
    file: Arc<dyn crate::storage::StorageFile>,
    header: SegmentHeader,
    len: u64,
    s: &scan::SegmentScan,
    last_good: u64,
) -> Active {
    Active {
        number,
        path,
        file,
        header,
        len,
        has_records: last_good >= header.first_seq,
        slot_generation: s.slot_generation,
        slot_seq: s.durable_seq.unwrap_or(0),
        prealloc_end: len,
        writeback_from: len,
        seed: binding_seed(&header),
    }
}

/// The CRC state of a segment's binding, for `Active::seed`.
fn binding_seed(header: &SegmentHeader) -> u32 {
    crate::format::binding_seed(&crate::format::binding(header.log_id, header.segment))
}

fn corrupt(path: &Path, offset: u64, why: &str) -> Error {
    Error::new(ErrorKind::Corrupt {
        summary: format!("{} at offset {offset}: {why}", path.display()),
    })
}

/// Creates the empty segment `number` of the log `log_id`, starting at `first_seq`, by §6.2 (as
/// [`create_segment`]), for a process that holds the writer lock without a `Log`: compaction in
/// place starts the segment after the last one this way.
pub(crate) fn create_empty_segment(
    storage: &dyn Storage,
    dir: &Path,
    log_id: u64,
    number: u64,
    (first_seq, log_first_seq): (u64, u64),
    preallocated: bool,
) -> Result<()> {
    let header = new_header(log_id, number, first_seq, log_first_seq, preallocated);
    create_segment(storage, dir, &header, &mut OpenReport::default()).map(drop)
}

/// Creates a segment: temporary file, header and zeroed preamble, fdatasync, rename into
/// place, directory fsync (FORMAT.md §6.2). No record goes into it before all of that is done.
fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    header: &SegmentHeader,
    opened: &mut OpenReport,
) -> Result<Active> {
    let path = Listing::path(dir, header.segment);
    if storage.exists(&path) {
        return Err(corrupt(
            &path,
            0,
            "a file already sits at the name of the segment this writer was about to create; walctl never writes there first, so another process did: move it aside and retry",
        ));
    }
    let temp = dir.join(temp_name(header.segment));
    let file = storage
        .open(&temp, OpenMode::CreateNew)
        .map_err(|e| Error::io("create", &temp, e))?;
    let mut preamble = header.encode().to_vec();
    preamble.resize(SEGMENT_DATA_START as usize, 0);
    let written = file
        .write_at(&preamble, 0)
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io("write", &temp, e));
    if let Err(e) = written {
        // Best effort: a leftover temporary file is removed by the next open anyway.
        let _ = storage.remove(&temp);
        return Err(e);
    }
    crate::kill_point("segment_temp_synced");
    storage
        .rename(&temp, &path)
        .map_err(|e| Error::io("rename", &path, e))?;
    crate::kill_point("segment_renamed");
    note(opened, repair::sync_dir(storage, dir)?);
    Ok(Active {
        number: header.segment,
        path,
        file,
        header: *header,
        len: SEGMENT_DATA_START,
        has_records: false,
        slot_generation: 0,
        slot_seq: 0,
        prealloc_end: SEGMENT_DATA_START,
        writeback_from: SEGMENT_DATA_START,
        seed: binding_seed(header),
    })
}

impl Log {
    /// Seals the current segment and starts the next one. Any failure poisons the writer: the
    /// sealed segment may or may not be durable, and the directory may or may not hold the new
    /// one, so only a reopen knows what is on disk.
    pub(super) fn rotate(&self, st: &mut WriteState) -> Result<()> {
        let result = self.seal_and_create(st);
        if let Err(e) = &result {
            self.poison(format!("rotating to a new segment failed: {e}"));
        }
        result
    }

    fn seal_and_create(&self, st: &mut WriteState) -> Result<()> {
        let last = st.next_seq - 1;
        let seal = |seg: &Active| {
            seg.file
                .sync_data()
                .map_err(|e| Error::io("fdatasync", &seg.path, e))
        };
        seal(&st.seg)?;
        if st.seg.has_records && last > st.seg.slot_seq {
            // The final slot goes down only after the data it vouches for, hence two syncs.
            let end = st.seg.len;
            self.write_slot(&mut st.seg, last, end)?;
            seal(&st.seg)?;
        }
        {
            let mut ss = self.lock_sync();
            self.raise_durable(&mut ss, last);
        }
        crate::kill_point("rotate_sealed");
        let preallocated = self.options.preallocate > 0;
        let header = new_header(
            self.log_id,
            st.seg.number + 1,
            st.next_seq,
            self.log_first_seq,
            preallocated,
        );
        let mut opened = OpenReport::default();
        st.seg = create_segment(&*self.options.storage, &self.dir, &header, &mut opened)?;
        if opened.durability_degraded {
            self.degraded.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes a watermark slot for records already durable (after open), and syncs it, so that
    /// damage to them later reads as corruption rather than a torn tail.
    fn prove_durable(&self, durable_seq: u64) -> Result<()> {
        let mut st = self.lock_state();
        if !st.seg.has_records || durable_seq <= st.seg.slot_seq {
            return Ok(());
        }
        let end = st.seg.len;
        self.write_slot(&mut st.seg, durable_seq, end)?;
        st.seg.file.sync_data().map_err(|e| {
            let err = Error::io("fdatasync", &st.seg.path, e);
            self.poison(err.to_string());
            err
        })
    }
}
