//! Library benchmarks (issue 6): each row runs walctl and its baseline alternately in one
//! process and prints medians and the ratio, because the machines are shared and noisy and only
//! ratios measured side by side mean anything. `cargo bench --bench library`; set
//! `WALCTL_BENCH_QUICK=1` for a short run. Results go to docs/PERFORMANCE.md by hand.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use walctl::{Entry, Log, Options};

const REPS: usize = 5;

fn quick() -> bool {
    std::env::var_os("WALCTL_BENCH_QUICK").is_some()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs `base` and `ours` alternately `REPS` times; each returns operations per second.
fn row(name: &str, unit: &str, mut base: impl FnMut() -> f64, mut ours: impl FnMut() -> f64) {
    let (mut b, mut o) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        b.push(base());
        o.push(ours());
    }
    let (b, o) = (median(b), median(o));
    println!("| {name} | {b:.0} {unit} | {o:.0} {unit} | {:.2}x |", o / b);
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
}

/// Appends without sync: walctl with a 1 MiB write buffer against a `BufWriter` writing the same
/// bytes (header plus payload per record) to a file. With `segment_size`, the run stays inside
/// one segment, so no sealing fdatasync is in it: what remains is the CPU path. A `batch` above 1
/// appends through `append_batch`, that many records per call, as `walctl append --lines` and
/// embedders with records at hand do: the lock and the clock are then paid once per batch.
fn append_no_sync(
    root: &Path,
    payload_len: usize,
    n: usize,
    segment_size: Option<u64>,
    batch: usize,
) {
    let payload = vec![b'x'; payload_len];
    let record = vec![b'x'; payload_len + walctl::format::RECORD_HEADER_SIZE];
    let base = || {
        fresh(root);
        let start = Instant::now();
        let mut w = BufWriter::with_capacity(1 << 20, File::create(root.join("plain")).unwrap());
        for _ in 0..n {
            w.write_all(&record).unwrap();
        }
        w.flush().unwrap();
        rate(n, start.elapsed())
    };
    let ours = || {
        fresh(root);
        let mut opts = Options {
            write_buffer: 1 << 20,
            ..Options::default()
        };
        if let Some(size) = segment_size {
            opts.segment_size = size;
        }
        let log = Log::open(root.join("log"), opts).unwrap();
        let entries = vec![Entry::data(&payload); batch];
        let mut out = Vec::with_capacity(batch);
        // Whole batches only, and the rate counts what was appended.
        let calls = n / batch;
        let start = Instant::now();
        for _ in 0..calls {
            if batch == 1 {
                log.append(&payload).unwrap();
            } else {
                out.clear();
                log.append_batch(&entries, None, &mut out).unwrap();
            }
        }
        log.flush().unwrap();
        let r = rate(calls * batch, start.elapsed());
        drop(log);
        r
    };
    let segments = if segment_size.is_some() {
        ", one segment (no sealing)"
    } else {
        ""
    };
    let calls = if batch == 1 {
        String::new()
    } else {
        format!(", append_batch of {batch}")
    };
    row(
        &format!("append, no sync, {payload_len} B{segments}{calls}"),
        "rec/s",
        base,
        ours,
    );
}

/// What sealing costs a stream of unsynced 1 KiB records without walctl: records gathered in
/// a 1 MiB buffer and written to a file when it fills (what a `BufWriter` does), against the
/// same stream fdatasyncing the file each time it crosses a segment's worth of bytes (64 MiB),
/// as a segmented log must before it starts the next segment (FORMAT.md §6.2). With
/// `writeback`, it also asks for the writeback of each 8 MiB written, as walctl does so that
/// the seal finds little left to write. Through the library's storage seam, which has the
/// writeback request.
fn seal_cost(root: &Path, n: usize) {
    use walctl::storage::{FsStorage, OpenMode, Storage};
    const SEGMENT: u64 = 64 << 20;
    const CHUNK: usize = 1 << 20;
    let record = vec![b'x'; 1024 + walctl::format::RECORD_HEADER_SIZE];
    let stream = |seal: bool, writeback: bool| {
        fresh(root);
        let start = Instant::now();
        let file = FsStorage
            .open(&root.join("plain"), OpenMode::CreateNew)
            .unwrap();
        let mut buf = Vec::with_capacity(CHUNK);
        let (mut written, mut asked) = (0u64, 0u64);
        for i in 0..n {
            buf.extend_from_slice(&record);
            if buf.len() + record.len() <= CHUNK && i + 1 < n {
                continue;
            }
            file.write_at(&buf, written).unwrap();
            let before = written;
            written += buf.len() as u64;
            buf.clear();
            if writeback && written - asked >= 8 << 20 {
                file.start_writeback(asked, written - asked).unwrap();
                asked = written;
            }
            if seal && written / SEGMENT > before / SEGMENT {
                file.sync_data().unwrap();
            }
        }
        rate(n, start.elapsed())
    };
    for (name, writeback) in [("", false), (" and writeback every 8 MiB", true)] {
        row(
            &format!("1 MiB writes of 1024 B records, and an fdatasync every 64 MiB{name}"),
            "rec/s",
            || stream(false, false),
            || stream(true, writeback),
        );
    }
}

/// Where the write+fdatasync loop puts a second, 32-byte write after each sync, as walctl puts
/// its watermark slot (FORMAT.md §2.2): nowhere, or alternately into the pages at 4096 and 8192
/// (walctl's slots), or into the page just after the data's.
#[derive(Clone, Copy)]
enum Slot {
    None,
    Apart,
    Adjacent,
}

/// A write+fdatasync loop of `record` into a preallocated, zero-filled file from where
/// walctl's records start, with the second write of `slot` after each sync. Through the
/// library's storage seam, as `seal_cost`: the same `pwrite` and fdatasync on every platform.
fn sync_loop(root: &Path, record: &[u8], n: usize, slot: Slot) -> f64 {
    use walctl::format::{SEGMENT_DATA_START, WATERMARK_SLOT_OFFSETS};
    use walctl::storage::{FsStorage, OpenMode, Storage};
    const PAGE: u64 = 4096;
    fresh(root);
    let f = FsStorage
        .open(&root.join("plain"), OpenMode::CreateNew)
        .unwrap();
    let len = SEGMENT_DATA_START as usize + (n + 1) * record.len() + 4 * PAGE as usize;
    f.write_at(&vec![0u8; len], 0).unwrap();
    f.sync_data().unwrap();
    let start = Instant::now();
    for i in 0..n as u64 {
        let at = SEGMENT_DATA_START + i * record.len() as u64;
        f.write_at(record, at).unwrap();
        f.sync_data().unwrap();
        let slot_at = match slot {
            Slot::None => continue,
            // walctl's rule: generation g to slot g mod 2 (FORMAT.md §2.2).
            Slot::Apart => WATERMARK_SLOT_OFFSETS[(i % 2) as usize],
            Slot::Adjacent => ((at + record.len() as u64) / PAGE + 1) * PAGE,
        };
        f.write_at(&[0xa5; 32], slot_at).unwrap();
    }
    rate(n, start.elapsed())
}

/// One append and one sync per record on one thread, against a write+fdatasync loop into a
/// preallocated, zero-filled file.
fn append_sync_one_thread(root: &Path, n: usize) {
    let record = vec![b'x'; 100 + walctl::format::RECORD_HEADER_SIZE];
    let ours = || {
        fresh(root);
        let log = Log::open(root.join("log"), Options::default()).unwrap();
        let start = Instant::now();
        for _ in 0..n {
            log.append_and_sync(&Entry::data(&record[..100])).unwrap();
        }
        rate(n, start.elapsed())
    };
    row(
        "append + sync per record, 1 thread, 100 B",
        "rec/s",
        || sync_loop(root, &record, n, Slot::None),
        ours,
    );
}

/// What the watermark slot's page costs the device, without walctl: the same loop with a
/// second page in each fdatasync, apart from the data (walctl's layout) or next to it.
fn slot_page_cost(root: &Path, n: usize) {
    let record = vec![b'x'; 100 + walctl::format::RECORD_HEADER_SIZE];
    for (name, slot) in [
        ("a second page apart (walctl's slots)", Slot::Apart),
        ("a second page next to the data's", Slot::Adjacent),
    ] {
        row(
            &format!("write + fdatasync loop, 100 B, and {name}"),
            "rec/s",
            || sync_loop(root, &record, n, Slot::None),
            || sync_loop(root, &record, n, slot),
        );
    }
}

/// `append_and_sync` from many threads against okaywal committing one entry per record.
fn append_sync_threads(root: &Path, threads: usize, per_thread: usize) {
    let payload = vec![b'x'; 100];
    let n = threads * per_thread;
    let base = || {
        fresh(root);
        let wal = okaywal::WriteAheadLog::recover(root.join("okaywal"), okaywal::LogVoid).unwrap();
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let (wal, payload) = (wal.clone(), &payload);
                s.spawn(move || {
                    for _ in 0..per_thread {
                        let mut e = wal.begin_entry().unwrap();
                        e.write_chunk(payload).unwrap();
                        e.commit().unwrap();
                    }
                });
            }
        });
        let r = rate(n, start.elapsed());
        wal.shutdown().unwrap();
        r
    };
    let ours = || {
        fresh(root);
        let log = Arc::new(Log::open(root.join("log"), Options::default()).unwrap());
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let (log, payload) = (Arc::clone(&log), &payload);
                s.spawn(move || {
                    for _ in 0..per_thread {
                        log.append_and_sync(&Entry::data(payload)).unwrap();
                    }
                });
            }
        });
        rate(n, start.elapsed())
    };
    row(
        &format!("append_and_sync, {threads} threads, 100 B (baseline okaywal)"),
        "rec/s",
        base,
        ours,
    );
}

/// Scanning a log (the library half of `walctl verify`) against reading the same files.
fn scan(root: &Path, payload_len: usize, bytes: u64) {
    fresh(root);
    let dir = root.join("log");
    {
        let log = Log::open(
            &dir,
            Options {
                write_buffer: 4 << 20,
                ..Options::default()
            },
        )
        .unwrap();
        let payload = vec![b'y'; payload_len];
        let n = bytes / (payload_len as u64 + 32);
        for _ in 0..n {
            log.append(&payload).unwrap();
        }
        log.sync().unwrap();
    }
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    let total: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let base = || {
        let start = Instant::now();
        let mut buf = vec![0u8; 1 << 20];
        for p in &files {
            let mut f = File::open(p).unwrap();
            while std::io::Read::read(&mut f, &mut buf).unwrap() > 0 {}
        }
        total as f64 / start.elapsed().as_secs_f64() / 1e6
    };
    let ours = || {
        let start = Instant::now();
        let report = walctl::verify(&dir).unwrap();
        assert_eq!(report.verdict(), walctl::Verdict::Clean);
        total as f64 / start.elapsed().as_secs_f64() / 1e6
    };
    row(
        &format!(
            "verify (library scan), {payload_len} B records, {} MiB, baseline read()",
            total >> 20
        ),
        "MB/s",
        base,
        ours,
    );
}

/// Whether the row named `name` runs: all rows unless `WALCTL_BENCH_ROWS` lists some
/// (comma-separated: `append`, `sync1`, `seal`, `slot`, `threads`, `scan`).
fn wanted(name: &str) -> bool {
    std::env::var("WALCTL_BENCH_ROWS").map_or(true, |rows| rows.split(',').any(|r| r == name))
}

fn main() {
    let root = std::env::var_os("WALCTL_BENCH_DIR")
        .map_or_else(|| std::env::temp_dir().join("walctl-bench"), Into::into);
    let q = quick();
    println!("| workload | baseline | walctl | ratio |\n|---|---|---|---|");
    if wanted("append") {
        let (small, large) = if q {
            (200_000, 50_000)
        } else {
            (2_000_000, 500_000)
        };
        for segment_size in [None, Some(1 << 30)] {
            append_no_sync(&root, 100, small, segment_size, 1);
            append_no_sync(&root, 1024, large, segment_size, 1);
        }
        append_no_sync(&root, 100, small, None, 64);
        append_no_sync(&root, 1024, large, None, 64);
    }
    if wanted("sync1") {
        append_sync_one_thread(&root, if q { 300 } else { 2000 });
    }
    if wanted("seal") {
        // Even a quick run crosses one 64 MiB boundary, or the row would measure no seal.
        seal_cost(&root, if q { 100_000 } else { 500_000 });
    }
    if wanted("slot") {
        slot_page_cost(&root, if q { 300 } else { 2000 });
    }
    if wanted("threads") {
        // Every power of two up to 32, so PERFORMANCE.md can show how durable throughput grows
        // with the number of writers (issue 6), not only the two rows the targets name.
        for threads in [1, 2, 4, 8, 16, 32] {
            append_sync_threads(&root, threads, if q { 800 } else { 8000 } / threads);
        }
    }
    if wanted("scan") {
        scan(&root, 1024, if q { 64 << 20 } else { 1 << 30 });
        scan(&root, 100, if q { 64 << 20 } else { 1 << 30 });
    }
    let _ = std::fs::remove_dir_all(&root);
}
