//! Hostile environment (issue 5, family 8), on the real file system in temporary directories.
//!
//! A symlink (to a victim file outside the log directory, or dangling to a path outside it) or a
//! FIFO is planted at every name walctl creates, and then the operation that creates that name
//! runs: open, append with rotation, torn-tail repair (by `truncate_partial` and by the writer's
//! open), compaction, and the CLI's export. Each case asserts that the victim is byte-identical,
//! that nothing outside the log directory was created or changed, that the operation succeeded
//! safely or failed with an error naming the file, and that it did not hang (every case runs in
//! a thread with a deadline). Files walctl creates have mode 0600 and its directories 0700 under
//! a umask of 0. Two writers race for the lock a thousand times; exactly one wins each round.
//! Allocation bounds have their own binary, `tests/allocation_limits.rs`.
#![cfg(unix)]
// `umask` and `mkfifo` are libc calls.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, Once};
use std::time::Duration;
use walctl::{Compaction, ErrorKind, Log, Options};

const VICTIM_BYTES: &[u8] = b"victim: nothing walctl does may change this file\n";
const DEADLINE: Duration = Duration::from_secs(30);
const SEGMENT_SIZE: u64 = 16 << 10;

/// Every test here runs under the most permissive umask, so that modes come from walctl alone.
fn permissive_umask() {
    static ONCE: Once = Once::new();
    // SAFETY: umask only swaps the process's file mode creation mask.
    ONCE.call_once(|| unsafe {
        libc::umask(0);
    });
}

/// Serialises the tests of this binary. A process spawned by one test (the export and the
/// process race spawn some) is a fork of this one: until it execs it holds a duplicate of every
/// descriptor, the lock file's included, so a lock another thread just released can still read
/// as held for a moment. That costs a round of the race a winner (never adds one); running the
/// tests one at a time keeps the measured race clean.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a directory entry.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// What is planted at a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plant {
    /// A symlink to the victim file outside the log directory.
    SymlinkToVictim,
    /// A symlink to a path outside the log directory that does not exist.
    DanglingSymlink,
    /// A named pipe: opening it for reading or writing blocks unless O_NONBLOCK.
    Fifo,
}

const PLANTS: [Plant; 3] = [Plant::SymlinkToVictim, Plant::DanglingSymlink, Plant::Fifo];

/// A temporary root holding the log directory `root/log`, a victim `root/victim` and nothing
/// else; `root/absent` is where the dangling symlinks point.
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        permissive_umask();
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        // Created under umask 0, so 0777: make it private like any test directory.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).expect("chmod root");
        fs::write(root.join("victim"), VICTIM_BYTES).expect("victim");
        Sandbox {
            dir: root.join("log"),
            root,
            _tmp: tmp,
        }
    }

    fn options(&self) -> Options {
        Options {
            segment_size: SEGMENT_SIZE,
            ..Options::default()
        }
    }

    fn plant(&self, name: &str, what: Plant) {
        let at = self.dir.join(name);
        match what {
            Plant::SymlinkToVictim => symlink(self.root.join("victim"), &at).expect("symlink"),
            Plant::DanglingSymlink => symlink(self.root.join("absent"), &at).expect("symlink"),
            Plant::Fifo => mkfifo(&at),
        }
    }

    /// Every entry outside the log directory, with its type and bytes.
    fn outside(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(&self.root).expect("read root") {
            let path = entry.expect("entry").path();
            if path != self.dir {
                let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(path, bytes);
            }
        }
        out
    }

    fn assert_outside_untouched(&self, before: &BTreeMap<PathBuf, Vec<u8>>, case: &str) {
        assert_eq!(
            fs::read(self.root.join("victim")).expect("victim"),
            VICTIM_BYTES,
            "{case}: the victim outside the log directory changed"
        );
        assert!(
            !self.root.join("absent").exists(),
            "{case}: a file was created through a dangling symlink"
        );
        assert_eq!(
            &self.outside(),
            before,
            "{case}: something outside the log directory was created or changed"
        );
    }
}

/// Runs `f` on its own thread; fails the test if it takes longer than the deadline (a FIFO
/// opened without O_NONBLOCK blocks forever) or panics.
fn guarded<T: Send + 'static>(case: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("{case}: hung for {DEADLINE:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{case}: panicked"),
    }
}

/// Asserts every regular file in `dir` has mode 0600.
fn assert_private_files(dir: &Path, case: &str) {
    for entry in fs::read_dir(dir).expect("read log dir") {
        let entry = entry.expect("entry");
        let meta = fs::symlink_metadata(entry.path()).expect("stat");
        if meta.file_type().is_file() {
            assert_eq!(
                meta.permissions().mode() & 0o7777,
                0o600,
                "{case}: {} has mode {:o}",
                entry.path().display(),
                meta.permissions().mode() & 0o7777
            );
        }
    }
}

/// The outcome of one case, for the summary line: `Ok` or the error text.
type Outcome = Result<String, String>;

fn describe<T>(r: walctl::Result<T>) -> Outcome {
    r.map(|_| "ok".to_string()).map_err(|e| e.to_string())
}

/// A failure must say which file it is about, so an operator can find it.
fn assert_clear(outcome: &Outcome, name: &str, case: &str) {
    if let Err(e) = outcome {
        assert!(
            e.contains(name) || e.contains("segment"),
            "{case}: the error does not name the file: {e}"
        );
    }
}

/// A closed log with `n` synced records of 300 bytes (keys `k0`..`k4` repeating).
fn build(sb: &Sandbox, n: u64) {
    let log = Log::open(&sb.dir, sb.options()).expect("open");
    for i in 0..n {
        let key = format!("k{}", i % 5);
        log.append_entry(&walctl::Entry::keyed(key.as_bytes(), &[i as u8; 300]))
            .expect("append");
    }
    log.sync().expect("sync");
}

/// The bytes `tear` appends.
fn garbage() -> Vec<u8> {
    (0..200u32).map(|i| (i * 37 + 11) as u8).collect()
}

/// Appends garbage after the last record of the last segment: a torn tail. Returns the offset
/// where a cut goes.
fn tear(sb: &Sandbox) -> u64 {
    let report = walctl::verify(&sb.dir).expect("verify");
    let last = report.segments.last().expect("a segment");
    let path = sb.dir.join(format!("{:020}.wal", last.segment));
    let mut bytes = fs::read(&path).expect("segment");
    bytes.extend(garbage());
    fs::write(&path, bytes).expect("tear");
    assert_eq!(
        walctl::verify(&sb.dir).expect("verify").verdict(),
        walctl::Verdict::TornTail
    );
    last.valid_len
}

/// Runs one planted case end to end; returns its outcome and the sandbox to inspect.
fn run_case(
    name: &str,
    plant: Plant,
    prepare: impl Fn(&Sandbox),
    op: impl FnOnce(PathBuf, Options) -> Outcome + Send + 'static,
) -> (Outcome, Sandbox) {
    let sb = Sandbox::new();
    fs::create_dir(&sb.dir).expect("log dir");
    prepare(&sb);
    sb.plant(name, plant);
    let before = sb.outside();
    let case = format!("{name} as {plant:?}");
    let (dir, options) = (sb.dir.clone(), sb.options());
    let outcome = guarded(&case, move || op(dir, options));
    sb.assert_outside_untouched(&before, &case);
    assert_clear(&outcome, name, &case);
    assert_private_files(&sb.dir, &case);
    // Whatever happened, the log still opens or refuses cleanly, and never hangs.
    let (dir, options) = (sb.dir.clone(), sb.options());
    let _ = guarded(&format!("{case}, reopen"), move || {
        describe(Log::open(&dir, options))
    });
    sb.assert_outside_untouched(&before, &case);
    eprintln!("{case}: {outcome:?}");
    (outcome, sb)
}

fn open_fresh(dir: PathBuf, options: Options) -> Outcome {
    let log = Log::open(&dir, options).map_err(|e| e.to_string())?;
    log.append(b"first").map_err(|e| e.to_string())?;
    log.sync().map_err(|e| e.to_string())?;
    Ok("ok".into())
}

#[test]
fn names_created_by_the_first_open() {
    let _serial = serial();
    for plant in PLANTS {
        // The writer lock: never created through a symlink; a FIFO there is locked in place.
        let (outcome, _) = run_case("LOCK", plant, |_| {}, open_fresh);
        if plant != Plant::Fifo {
            assert!(outcome.is_err(), "LOCK as {plant:?} was followed");
        }
        // The readers' lock: a writer only creates it when the name is free; whatever is planted
        // there is left alone (readers and compaction then fail to lock it, never follow it).
        let _ = run_case("READERS", plant, |_| {}, open_fresh);
        // The first segment's temporary name: open removes leftover temporaries (the link
        // itself, never its target) and creates its own exclusively.
        let (outcome, _) = run_case("00000000000000000001.wal.tmp", plant, |_| {}, open_fresh);
        assert!(outcome.is_ok(), "{outcome:?}");
        // A "segment" that is a link or a pipe is refused, never followed.
        let (outcome, _) = run_case("00000000000000000001.wal", plant, |_| {}, open_fresh);
        assert!(outcome.is_err(), "segment 1 as {plant:?}: {outcome:?}");
    }
}

fn rotate(dir: PathBuf, options: Options) -> Outcome {
    let log = Log::open(&dir, options).map_err(|e| e.to_string())?;
    // One record fills what is left of a 16 KiB segment; the next one forces a rotation.
    log.append(&[7u8; 3000]).map_err(|e| e.to_string())?;
    log.append(&[8u8; 3000]).map_err(|e| e.to_string())?;
    log.sync().map_err(|e| e.to_string())?;
    Ok("ok".into())
}

#[test]
fn names_created_by_a_rotation() {
    let _serial = serial();
    for plant in PLANTS {
        // Planted while no writer runs: the next open removes the temporary first.
        let (outcome, _) = run_case(
            "00000000000000000002.wal.tmp",
            plant,
            |sb| build(sb, 1),
            rotate,
        );
        assert!(outcome.is_ok(), "{outcome:?}");
        // Planted under a live writer, just before it rotates: the exclusive create refuses.
        let outcome = rotate_under_live_writer("00000000000000000002.wal.tmp", plant);
        assert!(outcome.is_err(), "{outcome:?}");
        let outcome = rotate_under_live_writer("00000000000000000002.wal", plant);
        assert!(outcome.is_err(), "{outcome:?}");
    }
}

fn rotate_under_live_writer(name: &str, plant: Plant) -> Outcome {
    let sb = Sandbox::new();
    let log = Log::open(&sb.dir, sb.options()).expect("open");
    log.append(&[1u8; 3000]).expect("append");
    sb.plant(name, plant);
    let before = sb.outside();
    let case = format!("{name} as {plant:?} under a live writer");
    let log = Arc::new(log);
    let writer = Arc::clone(&log);
    let outcome = guarded(&case, move || describe(writer.append(&[2u8; 3000])));
    sb.assert_outside_untouched(&before, &case);
    assert_clear(&outcome, name, &case);
    assert!(log.is_poisoned() || outcome.is_ok(), "{case}");
    drop(log);
    assert_private_files(&sb.dir, &case);
    eprintln!("{case}: {outcome:?}");
    outcome
}

#[test]
fn names_created_by_a_torn_tail_repair() {
    let _serial = serial();
    for plant in PLANTS {
        for by_open in [false, true] {
            let op = move |dir: PathBuf, options: Options| {
                if by_open {
                    describe(Log::open(&dir, options))
                } else {
                    describe(walctl::truncate_partial(&dir, &options, false))
                }
            };
            let (outcome, sb) = run_case("repair.jsonl", plant, |sb| prepare_torn(sb, false), op);
            assert!(outcome.is_err(), "repair.jsonl as {plant:?} was used");
            // The journal is opened before anything changes (FORMAT.md §7): a journal that
            // cannot be used refuses the repair with the segment untouched and no side file.
            let seg = fs::metadata(sb.dir.join("00000000000000000001.wal")).unwrap();
            assert!(
                seg.len() > CUT_OFFSET,
                "repair.jsonl as {plant:?}: the segment was cut"
            );
            assert!(
                !sb.dir.join(side_name()).exists(),
                "repair.jsonl as {plant:?}: a side file"
            );
            // The side file: a planted name is skipped for `<name>-1`, and the cut succeeds.
            let side = side_name();
            let (outcome, sb) = run_case(&side, plant, |sb| prepare_torn(sb, true), op);
            assert!(outcome.is_ok(), "{side} as {plant:?}: {outcome:?}");
            let kept = fs::read(sb.dir.join(format!("{side}-1"))).expect("side file -1");
            assert!(kept.ends_with(&garbage()), "{side} as {plant:?}");
            let planted = fs::symlink_metadata(sb.dir.join(&side))
                .unwrap()
                .file_type();
            assert!(
                planted.is_symlink() || planted.is_fifo(),
                "the planted entry was replaced"
            );
        }
    }
}

/// Offset where `prepare_torn` leaves the cut: one record of 300 bytes and a 2-byte key.
const CUT_OFFSET: u64 = 12288 + 32 + 2 + 300;

fn side_name() -> String {
    format!("00000000000000000001.wal.cut-{CUT_OFFSET:020}")
}

fn prepare_torn(sb: &Sandbox, check_side: bool) {
    build(sb, 1);
    assert_eq!(tear(sb), CUT_OFFSET);
    if check_side {
        assert!(!sb.dir.join(side_name()).exists());
    }
}

fn compact(dir: PathBuf, options: Options) -> Outcome {
    let plan = Compaction {
        keys: true,
        ..Compaction::default()
    };
    walctl::compact(&dir, &options, &plan)
        .map(|r| format!("{} -> {} records", r.before.records, r.after.records))
        .map_err(|e| e.to_string())
}

#[test]
fn names_created_by_a_compaction() {
    let _serial = serial();
    let build_log = |sb: &Sandbox| build(sb, 40);
    // 40 records of 334 bytes in 16 KiB segments: segments 1..=4; new ones start at 5.
    let first_new = {
        let sb = Sandbox::new();
        build(&sb, 40);
        walctl::verify(&sb.dir).unwrap().segments.len() + 1
    };
    assert_eq!(first_new, 5);
    let temp = format!("{first_new:020}.wal.tmp");
    for plant in PLANTS {
        // A stale temporary at a new segment's name is refused by the exclusive create.
        let (outcome, _) = run_case(&temp, plant, build_log, compact);
        assert!(outcome.is_err(), "{temp} as {plant:?}: {outcome:?}");
        // A planted "segment" at the first new number is listed, refused, never followed.
        let seg = format!("{first_new:020}.wal");
        let (outcome, _) = run_case(&seg, plant, build_log, compact);
        assert!(outcome.is_err(), "{seg} as {plant:?}: {outcome:?}");
        let (outcome, _) = run_case("COMPACTION.tmp", plant, build_log, compact);
        assert!(outcome.is_ok(), "COMPACTION.tmp as {plant:?}: {outcome:?}");
        let (outcome, _) = run_case("COMPACTION", plant, build_log, compact);
        assert!(
            outcome.is_err(),
            "COMPACTION as {plant:?} was read: {outcome:?}"
        );
    }
}

#[test]
fn readers_lock_planted_in_an_existing_log() {
    let _serial = serial();
    for plant in PLANTS {
        let sb = Sandbox::new();
        build(&sb, 3);
        fs::remove_file(sb.dir.join("READERS")).expect("remove READERS");
        sb.plant("READERS", plant);
        let before = sb.outside();
        let case = format!("READERS as {plant:?}, scan");
        let dir = sb.dir.clone();
        let report = guarded(&case, move || {
            walctl::verify(&dir).map_err(|e| e.to_string())
        });
        // A reader goes without the lock where it cannot take it (FORMAT.md §6.5).
        assert_eq!(report.expect("verify").records, 3, "{case}");
        sb.assert_outside_untouched(&before, &case);
        let dir = sb.dir.clone();
        let opened = guarded(&case, move || describe(Log::open(&dir, Options::default())));
        sb.assert_outside_untouched(&before, &case);
        let dir = sb.dir.clone();
        let compacted = guarded(&case, move || compact(dir, Options::default()));
        sb.assert_outside_untouched(&before, &case);
        if plant != Plant::Fifo {
            assert!(compacted.is_err(), "{case}: compaction followed READERS");
        }
        eprintln!("{case}: writer open {opened:?}, compaction {compacted:?}");
    }
}

#[test]
fn files_and_directories_walctl_creates_are_private_under_umask_0() {
    let _serial = serial();
    let sb = Sandbox::new();
    // Two levels that do not exist yet: both are created, both 0700.
    let dir = sb.root.join("parent").join("log");
    let log = Log::open(&dir, sb.options()).expect("open");
    for i in 0..30u8 {
        log.append_entry(&walctl::Entry::keyed(&[b'k', i % 3], &[i; 700]))
            .expect("append");
    }
    log.sync().expect("sync");
    drop(log);
    let mut seg = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect::<Vec<_>>();
    seg.sort();
    let last = seg.last().expect("segments").clone();
    let mut bytes = fs::read(&last).unwrap();
    bytes.extend([0xa5u8; 100]);
    fs::write(&last, bytes).unwrap();
    let report = walctl::truncate_partial(&dir, &sb.options(), false).expect("repair");
    assert!(matches!(report.1, walctl::RepairOutcome::Cut(_)));
    let plan = Compaction {
        keys: true,
        ..Compaction::default()
    };
    walctl::compact(&dir, &sb.options(), &plan).expect("compact");
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for want in ["LOCK", "READERS", "repair.jsonl"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert!(names.iter().any(|n| n.contains(".cut-")), "{names:?}");
    assert_private_files(&dir, "after open, rotation, repair and compaction");
    for d in [&dir, &sb.root.join("parent")] {
        let mode = fs::metadata(d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", d.display());
    }
}

#[test]
fn export_never_writes_through_a_planted_output() {
    let _serial = serial();
    for plant in PLANTS {
        let sb = Sandbox::new();
        build(&sb, 3);
        let target = sb.root.join("export.jsonl");
        match plant {
            Plant::SymlinkToVictim => symlink(sb.root.join("victim"), &target).unwrap(),
            Plant::DanglingSymlink => symlink(sb.root.join("absent"), &target).unwrap(),
            Plant::Fifo => mkfifo(&target),
        }
        for force in [false, true] {
            let case = format!("export --output as {plant:?}, force {force}");
            let (dir, out) = (sb.dir.clone(), target.clone());
            let status = guarded(&case, move || {
                let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"));
                cmd.arg("--dir")
                    .arg(&dir)
                    .arg("export-jsonl")
                    .arg("--output");
                cmd.arg(&out).env_remove("WALCTL_DIR");
                if force {
                    cmd.arg("--force");
                }
                cmd.stdin(std::process::Stdio::null())
                    .output()
                    .expect("run walctl")
            });
            assert_eq!(
                fs::read(sb.root.join("victim")).unwrap(),
                VICTIM_BYTES,
                "{case}"
            );
            assert!(!sb.root.join("absent").exists(), "{case}");
            let meta = fs::symlink_metadata(&target).unwrap();
            if force {
                assert!(status.status.success(), "{case}: {status:?}");
                assert!(
                    meta.file_type().is_file(),
                    "{case}: the link was not replaced"
                );
                assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{case}");
            } else {
                assert!(!status.status.success(), "{case}: wrote through {plant:?}");
                let planted = meta.file_type().is_symlink() || meta.file_type().is_fifo();
                assert!(
                    planted,
                    "{case}: the planted name was replaced without --force"
                );
            }
            eprintln!("{case}: exit {:?}", status.status.code());
        }
    }
}

/// Two threads open the same log at once, a thousand times: exactly one gets the writer, the
/// other `ErrorKind::Locked`. Every fourth round races on a directory that does not exist yet.
#[test]
fn two_writers_race_for_the_lock_a_thousand_times() {
    let _serial = serial();
    let sb = Sandbox::new();
    let rounds = 1000;
    for round in 0..rounds {
        let dir = if round % 4 == 0 {
            sb.root.join(format!("fresh-{round}"))
        } else {
            sb.dir.clone()
        };
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (dir, barrier) = (dir.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    Log::open(&dir, Options::default())
                })
            })
            .collect();
        let results: Vec<walctl::Result<Log>> = racers
            .into_iter()
            .map(|t| t.join().expect("racer"))
            .collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        let errors: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(ToString::to_string))
            .collect();
        assert_eq!(
            winners, 1,
            "round {round}: {winners} writers won: {errors:?}"
        );
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e.kind(), ErrorKind::Locked { .. }),
                    "round {round}: the loser failed with {e}, not Locked"
                );
            }
        }
    }
    eprintln!("lock race: {rounds} rounds, one winner each");
}

/// The same race between processes: this test binary re-runs itself as two children.
#[test]
fn two_processes_race_for_the_lock() {
    let _serial = serial();
    let sb = Sandbox::new();
    let rounds = 100;
    for round in 0..rounds {
        let go = sb.root.join(format!("go-{round}"));
        let (dir, gate) = (sb.dir.clone(), go.clone());
        let results = guarded(&format!("process race round {round}"), move || {
            race_children(&dir, &gate)
        });
        let winners = results.iter().filter(|r| *r == "won").count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        assert!(
            results.iter().any(|r| r == "locked"),
            "round {round}: {results:?}"
        );
    }
    eprintln!("process lock race: {rounds} rounds, one winner each");
}

/// Starts two children, opens the gate, and collects what each one got.
fn race_children(dir: &Path, go: &Path) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "lock_race_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("WALCTL_RACE_DIR", dir)
                .env("WALCTL_RACE_GO", go)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn a racer")
        })
        .collect();
    fs::write(go, b"").unwrap();
    let results: Vec<String> = children
        .iter_mut()
        .map(|c| {
            let out = BufReader::new(c.stdout.as_mut().unwrap());
            out.lines()
                .map(|l| l.expect("child output"))
                // libtest prints `test lock_race_child ... ` on the same line first.
                .find_map(|l| l.split_once("RACE ").map(|(_, r)| r.to_owned()))
                .expect("a result line")
        })
        .collect();
    for c in &mut children {
        drop(c.stdin.take());
        assert!(c.wait().unwrap().success());
    }
    results
}

/// The child side of `two_processes_race_for_the_lock`; does nothing when run normally.
#[test]
fn lock_race_child() {
    let _serial = serial();
    use std::io::{Read, Write};
    let (Some(dir), Some(go)) = (
        std::env::var_os("WALCTL_RACE_DIR"),
        std::env::var_os("WALCTL_RACE_GO"),
    ) else {
        return;
    };
    let deadline = std::time::Instant::now() + DEADLINE;
    while !Path::new(&go).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    let result = Log::open(&dir, Options::default());
    let line = match &result {
        Ok(_) => "won".to_string(),
        Err(e) if matches!(e.kind(), ErrorKind::Locked { .. }) => "locked".to_string(),
        Err(e) => format!("error {e}"),
    };
    let mut out = std::io::stdout();
    writeln!(out, "RACE {line}").unwrap();
    out.flush().unwrap();
    // Hold the lock (if won) until the parent has both answers and closes our stdin, or the
    // deadline passes (so a failed parent never leaves us behind).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(DEADLINE);
    drop(result);
}
