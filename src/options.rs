//! [`Options`]: every knob of a log in one documented struct, with no hidden defaults elsewhere.

use crate::format::{KEY_SIZE_MAX_DEFAULT, RECORD_SIZE_MAX_DEFAULT, SEGMENT_SIZE_DEFAULT};
use crate::storage::{FsStorage, Storage};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// When appends become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Only when [`crate::Log::sync`] (or `append_and_sync`) is called. Appends in between can
    /// be lost by a power loss, never by a process crash.
    #[default]
    Manual,
    /// Every append call syncs before it returns (through the same group commit as `sync`).
    EveryAppend,
}

/// How a log is opened and written.
#[derive(Clone)]
pub struct Options {
    /// Rotate to a new segment once the current one would exceed this many bytes (a record
    /// larger than that gets a segment of its own). Default 64 MiB; between 64 KiB and 1 GiB.
    pub segment_size: u64,
    /// Largest key plus payload an append accepts, in bytes. Default 16 MiB; at most 1 GiB.
    /// Readers always accept up to the format's hard limit, so lowering it never hides data.
    pub record_size_max: u32,
    /// Largest key an append accepts, in bytes. Default 4096; at most 65535.
    pub key_size_max: u16,
    /// When appends become durable. Default [`SyncPolicy::Manual`].
    pub sync_policy: SyncPolicy,
    /// Bytes of appends to gather in memory before one write hands them to the OS. 0 (the
    /// default) writes every append call through at once, so a returned sequence number
    /// always names bytes the OS holds and a process crash cannot lose them. A buffer makes
    /// small appends much cheaper; buffered appends reach the OS when the buffer fills, on
    /// `sync`, `flush`, rotation, a read through the handle, or drop, and a failed write of a
    /// buffer poisons the writer (records already given sequence numbers were lost).
    /// A buffer that fills is written by a helper thread (started with the first full buffer)
    /// while appends fill a second one, so memory holds up to twice this size; the failure of
    /// that write is reported by the next call that writes, flushes or syncs.
    /// [`crate::Log::written_seq`] tells which records the OS holds, for a caller that passes
    /// sequence numbers on (as `walctl append` prints them).
    pub write_buffer: usize,
    /// Bytes of zeros to write ahead of the end of the data in the segment being appended to,
    /// so that an fdatasync only writes data into space the file already has, without
    /// committing a size change (about twice as fast). Default 1 MiB; 0 disables it. The
    /// segment is marked `PREALLOCATED` (FORMAT.md §2.1), so recovery reads the zeros as the
    /// normal end of data.
    pub preallocate: u64,
    /// How long to wait for another writer to release the lock; `None` does not wait for a
    /// live writer. On storage whose locks can outlive their holder (the file system: an
    /// `flock` is lent to a forked child until it execs), a lock that looks held is looked at
    /// again for [`crate::repair::LENT_LOCK_GRACE`] (10 ms) before the open fails, so a
    /// reopen right after a writer was dropped is not refused for a process another thread
    /// was starting. Default `None`.
    pub lock_wait: Option<Duration>,
    /// How long a `sync` or `append_and_sync` caller waiting for another caller's fdatasync
    /// polls for it, yielding the CPU between looks, before it sleeps. Default 250 µs: on a
    /// device whose syncs end within that, waiters are back in time for the next sync, without
    /// a wake-up through the kernel (durable appends from 32 threads went from about 68,000 to
    /// about 126,000 per second on a 2-vCPU virtual machine), at the price of CPU time spent
    /// polling. Waiters sleep at once while the last sync took longer than this.
    /// `Duration::ZERO` always sleeps at once.
    pub sync_poll: Duration,
    /// Create the directory and the first segment when the log does not exist. Default true.
    pub create: bool,
    /// Where the bytes go. Default: the real file system.
    pub storage: Arc<dyn Storage>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_size: SEGMENT_SIZE_DEFAULT,
            record_size_max: RECORD_SIZE_MAX_DEFAULT,
            key_size_max: KEY_SIZE_MAX_DEFAULT,
            sync_policy: SyncPolicy::Manual,
            write_buffer: 0,
            preallocate: 1 << 20,
            lock_wait: None,
            sync_poll: Duration::from_micros(250),
            create: true,
            storage: Arc::new(FsStorage::new()),
        }
    }
}

impl Options {
    /// Defaults on the given storage backend.
    #[must_use]
    pub fn with_storage(storage: Arc<dyn Storage>) -> Options {
        Options {
            storage,
            ..Options::default()
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("segment_size", &self.segment_size)
            .field("record_size_max", &self.record_size_max)
            .field("key_size_max", &self.key_size_max)
            .field("sync_policy", &self.sync_policy)
            .field("write_buffer", &self.write_buffer)
            .field("preallocate", &self.preallocate)
            .field("lock_wait", &self.lock_wait)
            .field("sync_poll", &self.sync_poll)
            .field("create", &self.create)
            .field("storage", &self.storage)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_every_setting() {
        let opts = Options::default();
        // Exhaustive on purpose: a new field does not compile here until it is checked.
        let Options {
            segment_size,
            record_size_max,
            key_size_max,
            sync_policy,
            write_buffer,
            preallocate,
            lock_wait,
            sync_poll,
            create,
            storage,
        } = &opts;
        let text = format!("{opts:?}");
        for shown in [
            format!("segment_size: {segment_size}"),
            format!("record_size_max: {record_size_max}"),
            format!("key_size_max: {key_size_max}"),
            format!("sync_policy: {sync_policy:?}"),
            format!("write_buffer: {write_buffer}"),
            format!("preallocate: {preallocate}"),
            format!("lock_wait: {lock_wait:?}"),
            format!("sync_poll: {sync_poll:?}"),
            format!("create: {create}"),
            format!("storage: {storage:?}"),
        ] {
            assert!(text.contains(&shown), "{shown} is missing from {text}");
        }
    }
}
