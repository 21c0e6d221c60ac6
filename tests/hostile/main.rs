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

mod lock_race;
mod planted;

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
