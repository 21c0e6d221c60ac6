//! Symlinks and FIFOs planted at every name walctl creates, the readers' lock file of an
//! existing log, the modes of what walctl creates, and the export's output file.

use super::*;

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
        // A stale temporary at a new segment's name is removed first (the link itself, never its
        // target), as a writer's open removes it; the compaction then creates its own.
        let (outcome, _) = run_case(&temp, plant, build_log, compact);
        assert!(outcome.is_ok(), "{temp} as {plant:?}: {outcome:?}");
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
        // Keys written twice, so that the compaction below has records to drop and must take
        // READERS to remove the old segments (one with nothing to drop writes nothing).
        build(&sb, 8);
        fs::remove_file(sb.dir.join("READERS")).expect("remove READERS");
        sb.plant("READERS", plant);
        let before = sb.outside();
        let case = format!("READERS as {plant:?}, scan");
        let dir = sb.dir.clone();
        let report = guarded(&case, move || {
            walctl::verify(&dir).map_err(|e| e.to_string())
        });
        // A reader goes without the lock where it cannot take it (FORMAT.md §6.5).
        assert_eq!(report.expect("verify").records, 8, "{case}");
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

#[test]
fn salvage_never_writes_through_a_planted_target() {
    salvage_into_a_planted_target(Planted::Before);
}

#[test]
fn salvage_never_writes_through_a_target_planted_after_its_check() {
    salvage_into_a_planted_target(Planted::DuringSurvey);
}

/// When the symlink at salvage's target appears.
#[derive(Clone, Copy, PartialEq)]
enum Planted {
    /// Before salvage starts: its early check refuses it.
    Before,
    /// While salvage reads the damaged log, after that check and before it creates the target:
    /// only the exclusive creation can refuse it.
    DuringSurvey,
}

fn salvage_into_a_planted_target(when: Planted) {
    let _serial = serial();
    for plant in ["victim", "absent", "elsewhere"] {
        let sb = Sandbox::new();
        build(&sb, 5);
        let elsewhere = sb.root.join("elsewhere-dir");
        fs::create_dir(&elsewhere).expect("a directory to point at");
        let pointee = match plant {
            "elsewhere" => elsewhere.clone(),
            name => sb.root.join(name),
        };
        let target = sb.root.join("salvaged");
        if when == Planted::Before {
            symlink(&pointee, &target).expect("symlink");
        }
        let (dir, options, to) = (sb.dir.clone(), sb.options(), target.clone());
        let outcome = guarded(plant, move || {
            let mut pending = (when == Planted::DuringSurvey).then_some(pointee);
            let mut plant = |_, _| {
                if let Some(p) = pending.take() {
                    symlink(&p, &to).expect("symlink");
                }
            };
            let result =
                walctl::salvage_observed(&dir, &to, &options, false, &mut plant, &mut |_| {});
            assert!(pending.is_none(), "the survey reported no record");
            describe(result)
        });
        let Err(e) = outcome else {
            panic!("salvage wrote through a symlink to {plant}");
        };
        assert!(e.contains("salvaged exists"), "{plant}: {e}");
        assert_eq!(
            fs::read(sb.root.join("victim")).expect("victim"),
            VICTIM_BYTES
        );
        assert!(
            !sb.root.join("absent").exists(),
            "{plant}: created through the link"
        );
        assert_eq!(
            fs::read_dir(&elsewhere).expect("list").count(),
            0,
            "{plant}"
        );
    }
}
