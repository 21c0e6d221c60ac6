//! Where a failed compaction left the log: the stage its installation reached, what the
//! cleanup after the error did about it, and the [`CompactionState`] the error reports from the
//! two (FORMAT.md §6.6.3).

use super::abandon;
use super::install::{self, Resolved};
use crate::repair::sync_dir;
use crate::storage::Storage;
use std::cell::Cell;
use std::path::Path;

/// How far a compaction's installation got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before the commit point: the old log is the log.
    Before,
    /// The commit is made (readers follow it) but not yet known to be durable.
    Committing,
    /// The commit is durable.
    Committed,
}

pub(crate) type Stages = Cell<Stage>;

/// Where a failed compaction left the log, as [`crate::Error::compaction_state`] reports it.
/// Whatever the state, the log is never a mix of the old and the new: readers see one or the
/// other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompactionState {
    /// It failed before its commit point: the log holds every record it held, and what the
    /// compaction had written is removed (now, or by the next open or compaction).
    Unchanged,
    /// It failed after its commit point, which is durable: the log holds only the survivors
    /// once the installation is finished, as it was now or is by the next open of the log
    /// (until then, readers may still be shown the old log whole).
    Committed,
    /// It failed making its commit durable, and could neither finish nor undo it: the next
    /// open of the log settles it, finishing the compaction or, if a crash lost the commit,
    /// rolling it back. Either way the log is the old one or the new one.
    Undetermined,
}

impl CompactionState {
    pub(super) fn after(stage: Stage, settled: Settled) -> CompactionState {
        match (stage, settled) {
            (Stage::Before, _) | (Stage::Committing, Settled::RolledBack) => {
                CompactionState::Unchanged
            }
            (Stage::Committed, _) | (Stage::Committing, Settled::Finished | Settled::Synced) => {
                CompactionState::Committed
            }
            (Stage::Committing, Settled::Failed) => CompactionState::Undetermined,
        }
    }
}

/// What [`settle`] did about an installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Settled {
    /// Finished one past its commit point.
    Finished,
    /// Rolled back one that had not reached it.
    RolledBack,
    /// Found no marker to resolve, and made the directory, with any rename in it, durable.
    Synced,
    /// Could not do either.
    Failed,
}

/// After a compaction failed, at whatever step: finishes its installation if the commit was
/// made, rolls it back if not (as the next open would, but now, so a transient error leaves
/// neither a marker nor a second copy of the log behind), then removes its temporaries. Best
/// effort: what it cannot do, the next open or compaction does.
pub(super) fn settle(storage: &dyn Storage, dir: &Path) -> Settled {
    let settled = match install::resolve(storage, dir) {
        Ok(Some(Resolved::Finished)) => Settled::Finished,
        Ok(Some(Resolved::RolledBack)) => Settled::RolledBack,
        // No marker: a replacement renamed into place (the commit of a compaction in place
        // that removes no head) is made durable by this fsync.
        Ok(None) if sync_dir(storage, dir).is_ok() => Settled::Synced,
        Ok(None) | Err(_) => Settled::Failed,
    };
    // Temporaries a marker still names are the committed new log: never abandoned.
    if !storage.exists(&dir.join(install::MARKER_NAME)) {
        abandon(storage, dir);
    }
    settled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_commit_neither_durable_nor_settled_is_undetermined() {
        use CompactionState::{Committed, Unchanged, Undetermined};
        let all = [
            Settled::Finished,
            Settled::RolledBack,
            Settled::Synced,
            Settled::Failed,
        ];
        for settled in all {
            assert_eq!(CompactionState::after(Stage::Before, settled), Unchanged);
            assert_eq!(CompactionState::after(Stage::Committed, settled), Committed);
        }
        let committing = all.map(|s| CompactionState::after(Stage::Committing, s));
        assert_eq!(committing, [Committed, Unchanged, Committed, Undetermined]);
    }
}
