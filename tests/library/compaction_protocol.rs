//! The order of a compaction's storage operations, from the trace `MemStorage` records: each
//! step is durable (data fdatasynced, names fsynced into the directory) before the step that
//! depends on it, for both methods (FORMAT.md §6.6).

use crate::util::{dir, options};
use std::path::Path;
use walctl::Compaction;
use walctl::storage::{OpRecord, TraceOp};

fn is_segment(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wal")
}

fn index_of(trace: &[OpRecord], from: usize, f: impl Fn(&OpRecord) -> bool) -> Option<usize> {
    trace[from..].iter().position(f).map(|i| i + from)
}

/// Where a compaction removes its marker, which must follow a directory fsync after its first
/// segment removal at `first_remove` (FORMAT.md §6.6): the removals are durable first.
fn marker_removed_after_durable_removals(t: &[OpRecord], first_remove: usize) -> usize {
    let marker_remove = index_of(t, first_remove, |o| {
        o.op == TraceOp::Remove && o.path.ends_with("COMPACTION")
    })
    .expect("the marker is removed");
    assert!(
        t[first_remove..marker_remove]
            .iter()
            .any(|o| o.op == TraceOp::SyncDir),
        "the marker removed before the segment removals were durable"
    );
    marker_remove
}

#[test]
fn compaction_commits_before_it_renames_and_removes_only_after_durable_renames() {
    let storage = crate::util::built(120, 400);
    let start = storage.op_count() as usize;
    walctl::compact(
        &dir(),
        &options(&storage),
        &Compaction {
            before: Some(50),
            keys: false,
            dry_run: false,
            rewrite: true,
        },
    )
    .unwrap();
    let t = &storage.trace()[start..];
    let marker_rename = index_of(t, 0, |o| {
        o.op == TraceOp::Rename && o.target.as_deref() == Some(Path::new("/log/COMPACTION"))
    })
    .unwrap();
    for (i, o) in t.iter().enumerate() {
        if o.op == TraceOp::Write && o.path.to_string_lossy().ends_with(".wal.tmp") {
            assert!(
                t[i..marker_rename]
                    .iter()
                    .any(|s| s.op == TraceOp::SyncData && s.path == o.path),
                "temp unsynced at commit"
            );
        }
    }
    let commit_sync = index_of(t, marker_rename, |o| o.op == TraceOp::SyncDir).unwrap();
    let renames: Vec<usize> = (commit_sync..t.len())
        .filter(|&i| {
            t[i].op == TraceOp::Rename && t[i].path.to_string_lossy().ends_with(".wal.tmp")
        })
        .collect();
    assert!(!renames.is_empty());
    let first_remove = index_of(t, 0, |o| o.op == TraceOp::Remove && is_segment(&o.path)).unwrap();
    let last_rename = *renames.last().unwrap();
    assert!(
        t[last_rename..first_remove]
            .iter()
            .any(|o| o.op == TraceOp::SyncDir),
        "removed before renames were durable"
    );
    marker_removed_after_durable_removals(t, first_remove);
    assert_eq!(t.last().unwrap().op, TraceOp::SyncDir);
}

/// Compaction in place (FORMAT.md §6.6): the replacement and the new last segment are durable,
/// names included, before the marker; the marker is durable before the rename that commits;
/// that rename is durable before any segment is removed; the marker goes last.
#[test]
fn compaction_in_place_makes_each_step_durable_before_the_next() {
    let storage = crate::util::built(120, 400);
    let start = storage.op_count() as usize;
    let out = walctl::compact(&dir(), &options(&storage), &crate::util::before(50)).unwrap();
    assert_eq!(
        (out.segments_rewritten, out.segments_added),
        (1, 1),
        "the replacement and the new last segment"
    );
    let t = &storage.trace()[start..];
    let is_temp = |p: &Path| p.to_string_lossy().ends_with(".wal.tmp");
    let marker = index_of(t, 0, |o| {
        o.op == TraceOp::Rename && o.target.as_deref() == Some(Path::new("/log/COMPACTION"))
    })
    .expect("a head to remove needs the marker");
    let commit = index_of(t, marker, |o| o.op == TraceOp::Rename && is_temp(&o.path))
        .expect("the replacement is renamed after the marker");
    for (i, o) in t[..marker].iter().enumerate() {
        if o.op == TraceOp::Write && o.path.extension().is_some_and(|e| e == "wal" || e == "tmp") {
            assert!(
                t[i..marker]
                    .iter()
                    .any(|s| s.op == TraceOp::SyncData && s.path == o.path),
                "a write to {} unsynced at the marker",
                o.path.display()
            );
        }
        if o.op == TraceOp::Rename || (o.op == TraceOp::Write && is_temp(&o.path)) {
            assert!(
                t[i..marker].iter().any(|s| s.op == TraceOp::SyncDir),
                "a name not durable at the marker: {o:?}"
            );
        }
    }
    assert!(t[marker..commit].iter().any(|o| o.op == TraceOp::SyncDir));
    let first_remove = index_of(t, commit, |o| {
        o.op == TraceOp::Remove && is_segment(&o.path)
    })
    .expect("the head is removed");
    assert!(
        !t[..commit]
            .iter()
            .any(|o| o.op == TraceOp::Remove && is_segment(&o.path)),
        "a segment removed before the commit"
    );
    assert!(
        t[commit..first_remove]
            .iter()
            .any(|o| o.op == TraceOp::SyncDir)
    );
    let marker_remove = marker_removed_after_durable_removals(t, first_remove);
    // Then only the read-back: nothing changes after the marker's removal is durable.
    let last_sync = index_of(t, marker_remove, |o| o.op == TraceOp::SyncDir).unwrap();
    assert!(
        !t[last_sync..].iter().any(|o| matches!(
            o.op,
            TraceOp::Write | TraceOp::Rename | TraceOp::Remove | TraceOp::SetLen
        )),
        "a change after the last directory sync"
    );
}
