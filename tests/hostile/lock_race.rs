//! Two writers, as threads and as processes, race for the lock: exactly one wins each round.

use super::*;

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
                    "lock_race::lock_race_child",
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
                // libtest prints `test lock_race::lock_race_child ... ` on the same line first.
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

/// An `flock` belongs to every process holding a copy of its descriptor: a child forked while a
/// writer is open keeps the writer's lock after the writer drops it, until the child execs or
/// exits. `FsStorage` must say so (`locks_outlive_their_holder`), since that is what makes an
/// open look again for `walctl::repair::LENT_LOCK_GRACE` instead of reporting `Locked` at once
/// (the grace itself is tested on a hooked storage, in `library::lock::lent`).
#[test]
fn a_forked_child_keeps_a_dropped_writers_lock_until_it_exits() {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    use walctl::storage::Storage as _;
    let _serial = serial();
    let sb = Sandbox::new();
    let options = || Options {
        lock_wait: None,
        ..sb.options()
    };
    let writer = Log::open(&sb.dir, options()).expect("open the log");
    let (gate, mut open_gate) = std::io::pipe().expect("pipe");
    // SAFETY: between fork and exit the child calls only read(2) and _exit(2), which are
    // async-signal-safe, so the other threads of this process cannot leave it deadlocked.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        let mut byte = 0u8;
        // SAFETY: closes the child's copy of the gate's other end, so that the parent's end
        // closing (when the parent is done, or panics) also lets it go; reads one byte into a
        // local; then leaves without running any destructor.
        unsafe {
            libc::close(open_gate.as_raw_fd());
            libc::read(gate.as_raw_fd(), (&raw mut byte).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(gate);
    drop(writer);
    let refused = Log::open(&sb.dir, options()).map(|_| ()).unwrap_err();
    assert!(
        matches!(refused.kind(), ErrorKind::Locked { .. }),
        "the child's copy of the lock was not seen: {refused}"
    );
    assert!(walctl::storage::FsStorage::new().locks_outlive_their_holder());
    open_gate.write_all(b"x").expect("let the child go");
    let mut status = 0;
    // SAFETY: waits for our own child, writing its status into a local.
    let waited = unsafe { libc::waitpid(child, &raw mut status, 0) };
    assert_eq!(waited, child, "waitpid");
    Log::open(&sb.dir, options()).expect("the lock is free once the child is gone");
}
