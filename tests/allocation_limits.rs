//! Lengths near the limits never allocate more than the limit (issue 5, family 8).
//!
//! This binary counts every heap allocation (a counting global allocator, per thread) and runs
//! walctl over hostile segments on the real file system: record headers whose CRC holds while
//! they claim a body of up to 1 GiB (and beyond the format's limit), in the last segment (read a
//! window at a time) and in a sealed one (read when small, mapped when not), a sparse last
//! segment just past `SEGMENT_FILE_LIMIT`, and a sparse compaction marker. Scanning, the writer's open (which cuts
//! the tail) and `truncate_partial` must each peak below the file's size plus a small constant:
//! no buffer is ever sized from a length read off the disk. A one-key lookup (`walctl get`)
//! must not grow with the log's keys, nor a report with the number of damaged places.
// A global allocator is an `unsafe impl`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use walctl::format::{
    self, FORMAT_VERSION, RECORD_SIZE_LIMIT, SEGMENT_DATA_START, SEGMENT_FILE_LIMIT, SegmentHeader,
    WatermarkSlot,
};
use walctl::{Log, Options};

/// Counts the bytes live on the allocating thread and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting on the side
// touches only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Peak bytes allocated by `f` on this thread above what was live when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - start).max(0) as u64)
}

const LOG_ID: u64 = 0x5eed_0000_0000_0001;
/// Slack allowed beyond the file's own size: the repair's 1 MiB copy buffer, reports, paths.
const SLACK: u64 = 4 << 20;

fn preamble(segment: u64, first_seq: u64, durable: Option<u64>) -> Vec<u8> {
    let header = SegmentHeader {
        version: FORMAT_VERSION,
        flags: 0,
        log_id: LOG_ID,
        segment,
        first_seq,
        log_first_seq: 1,
        created_nanos: 0,
    };
    let mut out = header.encode().to_vec();
    out.resize(SEGMENT_DATA_START as usize, 0);
    if let Some(durable_seq) = durable {
        let slot = WatermarkSlot {
            durable_seq,
            generation: 1,
            durable_end: 0, // unknown: open scans the whole segment, as these cases need
        }
        .encode(LOG_ID, segment);
        out[8192..8224].copy_from_slice(&slot);
    }
    out
}

/// A record header whose header CRC holds while its lengths claim a body far past the file.
fn hostile_header(segment: u64, seq: u64, payload_len: u32, key_len: u16) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[8..12].copy_from_slice(&payload_len.to_le_bytes());
    h[12..14].copy_from_slice(&key_len.to_le_bytes());
    h[14] = 1;
    h[15] = u8::from(key_len > 0);
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&7u64.to_le_bytes());
    let state = crc32c::crc32c_append(crc32c::crc32c(&format::binding(LOG_ID, segment)), &h[8..]);
    h[4..8].copy_from_slice(&format::crc_mask(state).to_le_bytes());
    h[0..4].copy_from_slice(&0xdead_beef_u32.to_le_bytes());
    h
}

/// Two valid records, then the hostile header, then a little garbage.
fn segment_with(segment: u64, first_seq: u64, payload_len: u32, key_len: u16) -> Vec<u8> {
    let mut bytes = preamble(segment, first_seq, Some(first_seq + 1));
    let bind = format::binding(LOG_ID, segment);
    for seq in first_seq..first_seq + 2 {
        let meta = format::RecordMeta {
            seq,
            timestamp_nanos: seq,
            kind: format::RecordKind::Data,
        };
        format::encode_record(&mut bytes, &bind, meta, None, b"ordinary record");
    }
    bytes.extend(hostile_header(segment, first_seq + 2, payload_len, key_len));
    bytes.extend([0x5a; 100]);
    bytes
}

fn seg_path(dir: &Path, n: u64) -> std::path::PathBuf {
    dir.join(format!("{n:020}.wal"))
}

fn check(case: &str, file_len: u64, peak: u64) {
    eprintln!("{case}: peak {peak} bytes for a {file_len}-byte file");
    assert!(
        peak <= file_len + SLACK,
        "{case}: allocated {peak} bytes at peak for a file of {file_len}"
    );
}

/// The claimed lengths: exactly at the 1 GiB limit (with and without the longest key), one past
/// it, and the largest the fields can hold.
const CLAIMS: [(u32, u16); 4] = [
    (RECORD_SIZE_LIMIT, 0),
    (RECORD_SIZE_LIMIT - u16::MAX as u32, u16::MAX),
    (RECORD_SIZE_LIMIT + 1, 0),
    (u32::MAX, u16::MAX),
];

#[test]
fn huge_claimed_lengths_in_the_last_segment_allocate_nothing_from_the_claim() {
    for (payload_len, key_len) in CLAIMS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        std::fs::create_dir(&dir).unwrap();
        let bytes = segment_with(1, 1, payload_len, key_len);
        let len = bytes.len() as u64;
        std::fs::write(seg_path(&dir, 1), &bytes).unwrap();
        let case = format!("last segment, payload_len {payload_len}, key_len {key_len}");
        let (report, peak) = peak_of(|| walctl::verify(&dir).expect("verify"));
        assert_eq!(report.records, 2, "{case}");
        assert_eq!(report.verdict(), walctl::Verdict::TornTail, "{case}");
        check(&format!("{case}, verify"), len, peak);
        let (outcome, peak) = peak_of(|| walctl::truncate_partial(&dir, &Options::default(), true));
        outcome.expect("dry run");
        check(&format!("{case}, repair dry run"), len, peak);
        let (log, peak) = peak_of(|| Log::open(&dir, Options::default()).expect("open cuts"));
        assert!(log.open_report().cut.is_some(), "{case}");
        drop(log);
        check(&format!("{case}, writer open"), len, peak);
    }
}

/// Sealed segments are read when small and mapped when larger: both sizes, each claim.
#[test]
fn huge_claimed_lengths_in_a_sealed_segment_allocate_nothing_from_the_claim() {
    for ((payload_len, key_len), garbage) in CLAIMS.into_iter().flat_map(|c| [(c, 0), (c, 1 << 20)])
    {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        std::fs::create_dir(&dir).unwrap();
        let mut sealed = segment_with(1, 1, payload_len, key_len);
        sealed.resize(sealed.len() + garbage, 0x5a);
        std::fs::write(seg_path(&dir, 1), &sealed).unwrap();
        std::fs::write(seg_path(&dir, 2), preamble(2, 3, None)).unwrap();
        let len = sealed.len() as u64 + SEGMENT_DATA_START;
        let case = format!(
            "sealed segment of {} bytes, payload_len {payload_len}, key_len {key_len}",
            sealed.len()
        );
        let (report, peak) = peak_of(|| walctl::verify(&dir).expect("verify"));
        assert_eq!(report.verdict(), walctl::Verdict::Corrupt, "{case}");
        check(&format!("{case}, verify"), len, peak);
        let (outcome, peak) =
            peak_of(|| walctl::truncate_partial(&dir, &Options::default(), false));
        assert!(outcome.is_err(), "{case}: repair must refuse corruption");
        check(&format!("{case}, repair"), len, peak);
    }
}

/// A sparse last segment one byte past `SEGMENT_FILE_LIMIT` is refused before it is read.
#[test]
fn a_last_segment_past_the_file_limit_is_refused_without_reading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    let path = seg_path(&dir, 1);
    std::fs::write(&path, preamble(1, 1, None)).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(SEGMENT_FILE_LIMIT + 1).unwrap();
    drop(file);
    let (result, peak) = peak_of(|| walctl::verify(&dir));
    assert!(result.is_err(), "a segment past the limit was read");
    check("sparse last segment past the limit, verify", 0, peak);
    let (result, peak) = peak_of(|| Log::open(&dir, Options::default()));
    assert!(result.is_err(), "a segment past the limit was opened");
    check("sparse last segment past the limit, writer open", 0, peak);
}

/// A log in `dir` whose one segment holds 6,000 synced records of 4,000 bytes (24 MiB); not
/// preallocated, so zeros after them are a torn tail, not the normal end of the data. Returns
/// the segment's path and length.
fn last_segment_of_24_mib(dir: &Path) -> (std::path::PathBuf, u64) {
    let options = Options {
        preallocate: 0,
        ..Options::default()
    };
    let log = Log::open(dir, options).unwrap();
    let payload = vec![b'r'; 4000];
    for _ in 0..6_000 {
        log.append(&payload).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let path = seg_path(dir, 1);
    let len = std::fs::metadata(&path).unwrap().len();
    (path, len)
}

/// `scan_log` over the log in `dir`, which must deliver `records` records: the peak of the
/// scanning thread's heap.
fn scan_peak(dir: &Path, records: u64) -> u64 {
    let mut seen = 0u64;
    let (scanned, peak) = peak_of(|| {
        walctl::scan_log(&walctl::storage::FsStorage::new(), dir, &mut |_| {
            seen += 1;
            std::ops::ControlFlow::Continue(())
        })
    });
    assert_eq!((scanned.unwrap().records, seen), (records, records));
    peak
}

/// `verify` finds `records` valid records in the log in `dir` and says `verdict`, and a scan of
/// it (its last segment `mib` MiB) peaks below 10 MiB. verify scans on worker threads, which
/// this per-thread counter does not see; it shares the reading of the last segment with
/// `scan_log`, which is measured.
fn read_in_windows(dir: &Path, records: u64, verdict: walctl::Verdict, mib: u64) {
    let report = walctl::verify(dir).expect("verify");
    assert_eq!((report.records, report.verdict()), (records, verdict));
    let peak = scan_peak(dir, records);
    assert!(
        peak < 10 << 20,
        "a scan of a {mib} MiB last segment ({verdict:?}) peaked at {peak} bytes"
    );
}

/// Readers hold the last segment a window at a time, not whole: a 40 MiB last segment of clean
/// records and a crash's zero-filled tail is scanned in a quarter of its size.
#[test]
fn a_large_last_segment_is_read_a_window_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (path, data) = last_segment_of_24_mib(&dir);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(data + (16 << 20)).unwrap();
    drop(file);
    read_in_windows(&dir, 6_000, walctl::Verdict::TornTail, (data >> 20) + 16);
}

/// Damage early in the last segment changes nothing: from the damage to the end of the file,
/// readers look for the records that follow it a window at a time too. (They once read all of
/// it at once: a damaged segment of 1 GiB cost 1 GiB of memory to verify.)
#[test]
fn a_damaged_last_segment_is_read_a_window_at_a_time_past_the_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (path, data) = last_segment_of_24_mib(&dir);
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // The payload of record 10.
    let at = SEGMENT_DATA_START + 9 * (32 + 4000) + 32 + 100;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(at)).unwrap();
    std::io::Write::write_all(&mut file, b"rot").unwrap();
    drop(file);
    read_in_windows(&dir, 5_999, walctl::Verdict::Corrupt, data >> 20);
}

/// A report does not grow with the number of damaged places: a last segment of 80,000 one-byte
/// records, every other one damaged (40,000 places), is scanned in about what a clean one
/// takes. (The report once held every place, about 260 bytes each: 10 MB here, and more than
/// the log's own size on a log damaged that densely.)
#[test]
fn a_segment_damaged_in_every_other_record_is_reported_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let options = Options {
        preallocate: 0,
        ..Options::default()
    };
    let log = Log::open(&dir, options).unwrap();
    let entries = vec![walctl::Entry::data(b"r"); 80_000];
    log.append_batch(&entries, None, &mut Vec::new()).unwrap();
    log.sync().unwrap();
    drop(log);
    let clean = scan_peak(&dir, 80_000);
    let (none, clean_salvage) = salvage_peak(&dir);
    assert_eq!(none, 0);
    let path = seg_path(&dir, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    let record = format::RECORD_HEADER_SIZE + 1;
    for i in (1..80_000).step_by(2) {
        bytes[SEGMENT_DATA_START as usize + i * record + 32] ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    let damaged = scan_peak(&dir, 40_000);
    assert!(
        damaged < clean + (1 << 20),
        "40,000 damaged places: {damaged} bytes at peak, {clean} for the clean segment"
    );
    // Salvage names each of the 40,000 lost records, one run each, through its callback, and
    // keeps only the first few thousand (it once kept them all, and a set of them).
    let (runs, salvage) = salvage_peak(&dir);
    assert_eq!(runs, 40_000);
    assert!(
        salvage < clean_salvage + (1 << 20),
        "40,000 lost runs: {salvage} bytes at peak, {clean_salvage} for the clean segment"
    );
}

/// A dry-run salvage of the log in `dir`: the runs of lost sequence numbers handed to its
/// callback, and the peak of the salvaging thread's heap.
fn salvage_peak(dir: &Path) -> (u64, u64) {
    let mut runs = 0u64;
    let target = dir.with_extension("salvaged");
    let (salvaged, peak) = peak_of(|| {
        let options = Options::default();
        walctl::salvage_observed(dir, &target, &options, true, &mut |_, _| {}, &mut |_| {
            runs += 1;
        })
    });
    assert_eq!(salvaged.unwrap().lost_ranges, runs);
    (runs, peak)
}

/// A lookup of one key (`walctl get`) keeps that key only: its memory does not grow with the
/// keys of the log, where the whole index holds them all.
#[test]
fn a_one_key_lookup_does_not_grow_with_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    // Segments of 1 MiB: the sealed ones are mapped, so the last one's window stays small.
    let options = Options {
        segment_size: 1 << 20,
        ..Options::default()
    };
    let log = Log::open(&dir, options).unwrap();
    let keys: Vec<String> = (0..100_000).map(|i| format!("user:{i:07}")).collect();
    let entries: Vec<walctl::Entry<'_>> = keys
        .iter()
        .map(|k| walctl::Entry::keyed(k.as_bytes(), b"v"))
        .collect();
    log.append_batch(&entries, None, &mut Vec::new()).unwrap();
    log.sync().unwrap();
    drop(log);
    let storage = walctl::storage::FsStorage::new();
    let (one, peak_one) = peak_of(|| walctl::KeyIndex::build_for(&storage, &dir, b"user:0050000"));
    let (one, _) = one.unwrap();
    assert_eq!(one.len(), 1);
    let (all, peak_all) = peak_of(|| walctl::KeyIndex::build(&storage, &dir));
    assert_eq!(all.unwrap().0.len(), 100_000);
    assert!(
        peak_one < 2 << 20,
        "a one-key lookup peaked at {peak_one} bytes"
    );
    assert!(
        peak_all > 4 << 20,
        "the whole index of 100,000 keys peaked at {peak_all} bytes"
    );
}

/// A sparse 1 GiB compaction marker is refused at its 4 KiB limit.
#[test]
fn a_huge_compaction_marker_is_refused_without_reading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(seg_path(&dir, 1), preamble(1, 1, None)).unwrap();
    let marker = std::fs::File::create(dir.join("COMPACTION")).unwrap();
    marker.set_len(1 << 30).unwrap();
    drop(marker);
    let (result, peak) = peak_of(|| walctl::verify(&dir));
    assert!(result.is_err(), "a 1 GiB marker was read");
    check("sparse compaction marker, verify", 0, peak);
    let (result, peak) = peak_of(|| Log::open(&dir, Options::default()));
    assert!(result.is_err(), "a 1 GiB marker was read");
    check("sparse compaction marker, writer open", 0, peak);
}

/// The counter itself works: a 16 MiB buffer shows up.
#[test]
fn the_counter_sees_a_large_allocation() {
    let (v, peak) = peak_of(|| vec![1u8; 16 << 20]);
    assert!(peak >= 16 << 20, "peak {peak}");
    drop(v);
}
