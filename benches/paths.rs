//! Micro-benchmarks of the library's CPU paths (issue 6), with criterion's statistics: each
//! group holds walctl's path beside the baseline it is judged against, so one report shows
//! both, and `--save-baseline NAME` / `--baseline NAME` compare two commits path by path.
//!
//! `cargo bench --bench paths` (about two minutes); a filter runs one group, as in
//! `cargo bench --bench paths -- append`. Everything runs on real files in a temporary
//! directory, page cache warm. (`MemStorage` would not do: it simulates crashes, so it records
//! every write and copies a file at each sync.) Durable appends, where the device is the cost,
//! are in `benches/library.rs`, run alternately with their baselines.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};
use walctl::format::{self, Decoded, RecordKind, RecordMeta};
use walctl::storage::FsStorage;
use walctl::{Entry, Log, Options};

/// Record sizes measured: a short record, where the per-record work dominates, and a 1 KiB one,
/// where the bytes do.
const PAYLOADS: [usize; 2] = [100, 1024];

fn meta(seq: u64) -> RecordMeta {
    RecordMeta {
        seq,
        timestamp_nanos: 1_700_000_000_000_000_000 + seq,
        kind: RecordKind::Data,
    }
}

/// `n` records of `len`-byte payloads, encoded back to back, and the binding state they need.
fn encoded(n: u64, len: usize) -> (Vec<u8>, u32) {
    let seed = format::binding_seed(&format::binding(7, 1));
    let payload = vec![b'x'; len];
    let mut out = Vec::new();
    for seq in 1..=n {
        format::encode_record_seeded(&mut out, seed, meta(seq), None, &payload);
    }
    (out, seed)
}

/// Encoding one record (header, both checksums, copy) against copying the same number of bytes.
fn encode(c: &mut Criterion) {
    for len in PAYLOADS {
        let mut g = c.benchmark_group(format!("encode/{len} B"));
        g.throughput(Throughput::Elements(1));
        let seed = format::binding_seed(&format::binding(7, 1));
        let payload = vec![b'x'; len];
        let record = vec![b'x'; format::encoded_len(0, len)];
        let mut out = Vec::with_capacity(1 << 20);
        g.bench_function("baseline: copy the record's bytes", |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&record));
            });
        });
        g.bench_function("walctl: encode_record_seeded", |b| {
            b.iter(|| {
                out.clear();
                format::encode_record_seeded(&mut out, seed, meta(1), None, black_box(&payload));
            });
        });
        g.finish();
    }
}

/// Decoding every record of a buffer in place against CRC32C over the same bytes, the floor of
/// any scan that checks them.
fn decode(c: &mut Criterion) {
    for len in PAYLOADS {
        let (bytes, seed) = encoded(10_000, len);
        let mut g = c.benchmark_group(format!("decode/{len} B"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("baseline: CRC32C of the bytes", |b| {
            b.iter(|| crc32c::crc32c(black_box(&bytes)));
        });
        g.bench_function("walctl: decode_record_seeded, record by record", |b| {
            b.iter(|| {
                let mut at = 0;
                while let Decoded::Record(r) = format::decode_record_seeded(
                    &bytes[at..],
                    seed,
                    format::RECORD_SIZE_LIMIT,
                    format::KEY_SIZE_LIMIT,
                ) {
                    at += r.length as usize;
                }
                assert_eq!(at, bytes.len());
            });
        });
        g.finish();
    }
}

/// Appends without sync through a 1 MiB write buffer to a log of real files, against a
/// `BufWriter` of the same capacity writing the same bytes to a file beside it. Each sample
/// starts from a new log, untimed.
fn append(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    for len in PAYLOADS {
        let mut g = c.benchmark_group(format!("append/{len} B"));
        g.throughput(Throughput::Elements(1));
        let payload = vec![b'x'; len];
        let record = vec![b'x'; format::encoded_len(0, len)];
        let plain = tmp.path().join("plain");
        g.bench_function("baseline: BufWriter", |b| {
            b.iter_custom(|n| {
                let file = std::fs::File::create(&plain).unwrap();
                let start = Instant::now();
                let mut w = BufWriter::with_capacity(1 << 20, file);
                for _ in 0..n {
                    w.write_all(black_box(&record)).unwrap();
                }
                w.flush().unwrap();
                start.elapsed()
            });
        });
        // The format's own cost, with nothing of walctl's writer around it: what one thread
        // must do per record (read the clock, encode with both checksums) before a BufWriter's
        // write. A reference for how far the writer is from the format's floor on one core.
        g.bench_function("reference: clock read and encoding, then BufWriter", |b| {
            let seed = format::binding_seed(&format::binding(7, 1));
            let mut buf = Vec::with_capacity(1 << 20);
            b.iter_custom(|n| {
                let file = std::fs::File::create(&plain).unwrap();
                let start = Instant::now();
                let mut w = BufWriter::with_capacity(1 << 20, file);
                for seq in 1..=n {
                    let meta = RecordMeta {
                        timestamp_nanos: walctl::time::now_nanos(),
                        ..meta(seq)
                    };
                    format::encode_record_seeded(&mut buf, seed, meta, None, black_box(&payload));
                    if buf.len() >= 1 << 20 {
                        w.write_all(&buf).unwrap();
                        buf.clear();
                    }
                }
                w.write_all(&buf).unwrap();
                buf.clear();
                w.flush().unwrap();
                start.elapsed()
            });
        });
        let dir = tmp.path().join("log");
        g.bench_function("walctl: Log::append", |b| {
            b.iter_custom(|n| {
                let log = new_log(&dir);
                let start = Instant::now();
                for _ in 0..n {
                    log.append(black_box(&payload)).unwrap();
                }
                log.flush().unwrap();
                start.elapsed()
            });
        });
        g.bench_function("walctl: Log::append_batch of 64", |b| {
            let entries = vec![Entry::data(&payload); 64];
            let mut out = Vec::with_capacity(64);
            b.iter_custom(|n| {
                let log = new_log(&dir);
                let batches = n.div_ceil(64);
                let start = Instant::now();
                for _ in 0..batches {
                    out.clear();
                    log.append_batch(black_box(&entries), None, &mut out)
                        .unwrap();
                }
                log.flush().unwrap();
                // Per record, as the group's throughput counts.
                start.elapsed().mul_f64(n as f64 / (batches * 64) as f64)
            });
        });
        g.finish();
    }
}

/// A new, empty log in `dir` with a 1 MiB write buffer.
fn new_log(dir: &Path) -> Log {
    let _ = std::fs::remove_dir_all(dir);
    let options = Options {
        write_buffer: 1 << 20,
        ..Options::default()
    };
    Log::open(dir, options).unwrap()
}

/// Scanning a 64 MiB log of real files (four segments, page cache warm): every record decoded
/// and delivered on one thread (`scan_log`), and checked on every core (`verify_log`), against
/// CRC32C over the same segment files read whole.
fn scan(c: &mut Criterion) {
    for len in PAYLOADS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let bytes = write_log(&dir, len, 64 << 20);
        let mut g = c.benchmark_group(format!("scan/64 MiB of {len} B records"));
        g.throughput(Throughput::Bytes(bytes));
        g.sample_size(20);
        g.bench_function("baseline: read each segment, CRC32C", |b| {
            b.iter(|| {
                let mut crc = 0;
                for entry in std::fs::read_dir(&dir).unwrap() {
                    crc ^= crc32c::crc32c(&std::fs::read(entry.unwrap().path()).unwrap());
                }
                crc
            });
        });
        let storage = FsStorage::new();
        g.bench_function(
            "walctl: scan_log, one thread, every record delivered",
            |b| {
                b.iter(|| {
                    let mut records = 0u64;
                    let report = walctl::scan_log(&storage, &dir, &mut |_| {
                        records += 1;
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                    assert!(report.damage.is_empty() && records > 0);
                });
            },
        );
        g.bench_function("walctl: verify_log, every core", |b| {
            b.iter(|| {
                assert!(
                    walctl::verify_log(&storage, &dir)
                        .unwrap()
                        .damage
                        .is_empty()
                )
            });
        });
        g.finish();
    }
}

/// Writes about `total` bytes of `len`-byte records into 16 MiB segments; returns the bytes
/// of the segment files.
fn write_log(dir: &Path, len: usize, total: u64) -> u64 {
    let options = Options {
        segment_size: 16 << 20,
        write_buffer: 1 << 20,
        ..Options::default()
    };
    let log = Log::open(dir, options).unwrap();
    let payload = vec![b'y'; len];
    for _ in 0..total / format::encoded_len(0, len) as u64 {
        log.append(&payload).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Opening a log of real files for writing when its last segment holds 60 MiB of records,
/// against opening an empty one: open reads what follows the durable end its watermark slot
/// records, not the segment (a one-record `walctl append` on a 10 GiB log is the CLI's view of
/// this). Both include open's fsync of the segment and the directory, with nothing to write.
fn open(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("open for writing");
    for (name, fill) in [
        ("baseline: empty log", 0),
        ("walctl: 60 MiB last segment", 60 << 20),
    ] {
        let dir = tmp.path().join(format!("log{fill}"));
        let log = Log::open(&dir, Options::default()).unwrap();
        let payload = vec![b'z'; 1024];
        for _ in 0..fill / format::encoded_len(0, 1024) {
            log.append(&payload).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        g.bench_function(name, |b| {
            b.iter(|| Log::open(&dir, Options::default()).unwrap());
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = paths;
    config = config();
    targets = encode, decode, append, scan, open
}
criterion_main!(paths);
