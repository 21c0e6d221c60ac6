//! Real process kills (docs/TESTING.md, family 6): the real `walctl` is aborted at named kill
//! points inside the library, and killed with SIGKILL at random moments. Every record whose
//! `append --sync` returned success must be there after reopening, the lock must be free, and
//! no leftover temporary file may break the next open.
//!
//! Needs the binary built with the kill points: `cargo test --features kill-points --test kill`
//! (`.ci/run` does this). Without the feature this file holds no tests.
#![cfg(feature = "kill-points")]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use walctl::{Log, Options, Verdict};

fn walctl(dir: &Path, args: &[&str], kill: Option<(&str, u32)>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_walctl"));
    cmd.arg("--dir").arg(dir).args(args).stdin(Stdio::null());
    if let Some((point, hit)) = kill {
        cmd.env("WALCTL_KILL_AT", point)
            .env("WALCTL_KILL_HIT", hit.to_string());
    }
    cmd.output().expect("walctl runs")
}

fn payload(i: usize) -> String {
    format!("record-{i:05}-{}", "x".repeat(i * 37 % 900))
}

/// Appends `from..to` with one `append --sync --segment-size 16384` invocation.
fn append(dir: &Path, from: usize, to: usize, kill: Option<(&str, u32)>) -> Output {
    let records: Vec<String> = (from..to).map(payload).collect();
    let mut args = vec![
        "append",
        "--sync",
        "--segment-size",
        "16384",
        "--wait",
        "10",
    ];
    args.extend(records.iter().map(String::as_str));
    walctl(dir, &args, kill)
}

/// After a crash: no corruption, the lock is free, and the log is the acknowledged records,
/// then possibly some of the interrupted invocation's, in order.
fn check_recovers(dir: &Path, acked: usize, attempted: usize, what: &str) {
    let report = walctl::verify(dir).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_ne!(
        report.verdict(),
        Verdict::Corrupt,
        "{what}: {:?}",
        report.damage
    );
    let log =
        Log::open(dir, Options::default()).unwrap_or_else(|e| panic!("{what}: lock or open: {e}"));
    let records = log.records().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        records.len() >= acked,
        "{what}: {} records, {acked} acknowledged",
        records.len()
    );
    assert!(records.len() <= attempted, "{what}: phantom records");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.payload, payload(i).as_bytes(), "{what}: record {}", i + 1);
    }
}

#[test]
fn kills_at_every_write_path_point_keep_every_acknowledged_record() {
    let points = [
        "append_written",
        "sync_synced",
        "rotate_sealed",
        "segment_temp_synced",
        "segment_renamed",
    ];
    let mut kills = 0;
    for point in points {
        for hit in 1..=3 {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("log");
            assert!(append(&dir, 0, 40, None).status.success());
            let out = append(&dir, 40, 70, Some((point, hit)));
            let acked = if out.status.success() { 70 } else { 40 };
            kills += usize::from(!out.status.success());
            check_recovers(&dir, acked, 70, &format!("{point} hit {hit}"));
            // The next invocation finds the lock free and no leftover temporary in its way. It
            // may wait a moment: this test process just held the lock (check_recovers), and a
            // child another test thread forked meanwhile holds it too until it execs.
            let next = walctl(&dir, &["append", "--wait", "5", "after"], None);
            assert!(
                next.status.success(),
                "{point}: {}",
                String::from_utf8_lossy(&next.stderr)
            );
        }
    }
    assert!(kills >= 10, "only {kills} invocations were killed");
}

#[test]
fn kills_during_repair_leave_the_cut_to_be_finished_and_lose_nothing() {
    for point in ["repair_saved", "repair_cut"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        assert!(append(&dir, 0, 30, None).status.success());
        let last = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .max()
            .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        std::io::Write::write_all(&mut f, &[0x5a; 100]).unwrap();
        let out = walctl(
            &dir,
            &["repair", "--truncate-partial", "--yes"],
            Some((point, 1)),
        );
        assert!(!out.status.success(), "{point} was reached");
        // Finishing the job: repair again (or any writer open) cuts what is left.
        let again = walctl(&dir, &["repair", "--truncate-partial", "--yes"], None);
        assert!(
            again.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        check_recovers(&dir, 30, 30, point);
        let side = std::fs::read_dir(&dir).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".cut-")
        });
        assert!(side.count() >= 1, "{point}: the cut bytes were kept");
    }
}

#[test]
fn kills_during_compaction_leave_the_old_or_the_new_log() {
    for point in ["compact_committed", "compact_installed"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        assert!(append(&dir, 0, 60, None).status.success());
        let out = walctl(&dir, &["compact", "--before", "21"], Some((point, 1)));
        assert!(!out.status.success(), "{point} was reached");
        let report = walctl::verify(&dir).unwrap();
        assert_eq!(
            report.verdict(),
            Verdict::Clean,
            "{point}: readers see one log: {:?}",
            report.damage
        );
        assert!(
            matches!(report.records, 40 | 60),
            "{point}: {} records",
            report.records
        );
        let log = Log::open(&dir, Options::default()).unwrap();
        let seqs: Vec<u64> = log.records().unwrap().iter().map(|r| r.seq).collect();
        let first = seqs[0];
        assert!(first == 1 || first == 21, "{point}: starts at {first}");
        assert_eq!(seqs, (first..=60).collect::<Vec<_>>(), "{point}");
        assert!(
            std::fs::read_dir(&dir)
                .unwrap()
                .all(|e| e.unwrap().file_name() != "COMPACTION")
        );
    }
}

#[test]
fn random_sigkills_of_appenders_never_lose_an_acknowledged_record() {
    let seed = std::env::var("WALCTL_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    println!("seed {seed} (replay with WALCTL_KILL_SEED={seed})");
    let mut rng = seed | 1;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut acked: Vec<String> = Vec::new();
    let mut killed = 0;
    for i in 0..150 {
        let record = format!("kill-{i}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_walctl"))
            .arg("--dir")
            .arg(&dir)
            .args(["append", "--sync", "--wait", "10", &record])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % 15_000));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            acked.push(record);
        } else {
            killed += 1;
        }
    }
    let report = walctl::verify(&dir).unwrap();
    assert_ne!(
        report.verdict(),
        Verdict::Corrupt,
        "seed {seed}: {:?}",
        report.damage
    );
    let log = Log::open(&dir, Options::default()).unwrap();
    let records: Vec<String> = log
        .records()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.payload.clone()).unwrap())
        .collect();
    for a in &acked {
        assert!(records.contains(a), "seed {seed}: acknowledged {a} lost");
    }
    assert!(
        killed > 10 && acked.len() > 10,
        "seed {seed}: {killed} killed, {} acknowledged",
        acked.len()
    );
}
