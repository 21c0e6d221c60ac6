//! Writing ahead: with a write buffer (`Options::write_buffer`), a full buffer is written by a
//! helper thread while the appender fills a second one.
//!
//! Written on the appender's own thread, a bulk load alternates between encoding records
//! (checksums, headers) and the kernel copying them into the page cache, each waiting for the
//! other. With the write on a helper the two overlap on two cores. Short records leave their
//! checksums to the helper too when it is idle as the buffer fills (`Job::seal`): for them the
//! checksum calls are a large share of the appender's work. At most one write is in
//! flight: the next full buffer, and every other operation on the file (flush, sync, sealing,
//! a read through the handle, drop), first waits for it (`Log::settle`), so the file sees
//! the same writes in the same order as without a helper, and nothing is synced or sealed
//! before the bytes it covers are written.
//!
//! Buffered records were never promised to the OS before a flush, so a failed write here is
//! what it was before: the writer is poisoned, reported by the call that waits for it.

use crate::storage::StorageFile;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// A buffer to write at `offset`, then a writeback hint for `writeback` (offset, length).
pub(super) struct Job {
    pub(super) file: Arc<dyn StorageFile>,
    pub(super) buf: Vec<u8>,
    pub(super) offset: u64,
    /// The sequence number of the last record in `buf`.
    pub(super) last_seq: u64,
    pub(super) writeback: Option<(u64, u64)>,
    /// The segment's binding state, when the records in `buf` still need their checksums
    /// (`format::seal_records`) before the write.
    pub(super) seal: Option<u32>,
}

/// The write in flight: where it starts and the last record it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Flight {
    pub(super) offset: u64,
    pub(super) last_seq: u64,
}

/// What the helper hands back: the buffer, emptied for reuse, and the write's result.
struct Done {
    buf: Vec<u8>,
    result: io::Result<()>,
}

/// The appender's side: the helper (started with the first full buffer) and the write in
/// flight.
#[derive(Default)]
pub(super) struct Ahead {
    helper: State,
    inflight: Option<Flight>,
    /// The buffer the last write handed back, for the next round of appends.
    spare: Vec<u8>,
    /// The helper's answer for the write in flight, when [`Ahead::busy`] found it early.
    finished: Option<Done>,
}

#[derive(Default)]
enum State {
    /// No buffer has filled yet.
    #[default]
    NotStarted,
    Running(Helper),
    /// The helper could not be started, or stopped: every write is made by the appender.
    Unavailable,
}

struct Helper {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Ahead {
    /// Waits for the write in flight. Returns which write it was and what it reported, or
    /// `None` when nothing was in flight.
    pub(super) fn wait(&mut self) -> Option<(Flight, io::Result<()>)> {
        let flight = self.inflight.take()?;
        let done = match (self.finished.take(), &self.helper) {
            (Some(done), _) => Some(done),
            (None, State::Running(h)) => h.done.recv().ok(),
            (None, _) => None,
        };
        Some(match done {
            Some(Done { buf, result }) => {
                self.give_back(buf);
                (flight, result)
            }
            // The helper is gone (it panicked): whether the bytes were written is unknown.
            None => {
                self.helper = State::Unavailable;
                (
                    flight,
                    Err(io::Error::other("the write-ahead helper thread stopped")),
                )
            }
        })
    }

    /// Whether a write is in flight and the helper has not finished it yet. Does not wait.
    pub(super) fn busy(&mut self) -> bool {
        if self.inflight.is_none() || self.finished.is_some() {
            return false;
        }
        let State::Running(h) = &self.helper else {
            return false;
        };
        match h.done.try_recv() {
            Ok(done) => {
                self.finished = Some(done);
                false
            }
            Err(mpsc::TryRecvError::Empty) => true,
            // The helper is gone: `wait` reports it.
            Err(mpsc::TryRecvError::Disconnected) => false,
        }
    }

    /// Hands `job` to the helper. Gives it back when there is no helper, for the caller to
    /// write itself. Call [`Ahead::wait`] first.
    pub(super) fn hand_over(&mut self, job: Job) -> Result<(), Job> {
        debug_assert!(self.inflight.is_none(), "one write in flight at most");
        let State::Running(Helper {
            jobs: Some(jobs), ..
        }) = &self.helper
        else {
            return Err(job);
        };
        let flight = Flight {
            offset: job.offset,
            last_seq: job.last_seq,
        };
        match jobs.send(job) {
            Ok(()) => {
                self.inflight = Some(flight);
                Ok(())
            }
            Err(mpsc::SendError(job)) => {
                self.helper = State::Unavailable;
                Err(job)
            }
        }
    }

    /// Whether a helper runs (started here on first use) to take the next write.
    pub(super) fn ready(&mut self) -> bool {
        if let State::NotStarted = self.helper {
            self.helper = Helper::spawn().map_or(State::Unavailable, State::Running);
        }
        matches!(self.helper, State::Running(_))
    }

    /// Keeps `buf`, written by the caller itself, as the spare.
    pub(super) fn give_back(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.spare = buf;
    }

    /// An empty buffer for the next appends: the one the last write handed back.
    pub(super) fn take_spare(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.spare)
    }
}

impl Helper {
    fn spawn() -> Option<Helper> {
        let (jobs, inbox) = mpsc::sync_channel::<Job>(1);
        let (outbox, done) = mpsc::sync_channel::<Done>(1);
        let thread = std::thread::Builder::new()
            .name("walctl-write-ahead".into())
            .spawn(move || {
                for mut job in inbox {
                    let result = job.run();
                    if outbox
                        .send(Done {
                            buf: job.buf,
                            result,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Helper {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }
}

impl Job {
    pub(super) fn run(&mut self) -> io::Result<()> {
        if let Some(seed) = self.seal.take() {
            crate::format::seal_records(&mut self.buf, seed);
        }
        self.file.write_at(&self.buf, self.offset)?;
        crate::kill_point("append_written");
        if let Some((offset, len)) = self.writeback {
            // A hint only: its failure changes nothing about durability.
            let _ = self.file.start_writeback(offset, len);
        }
        Ok(())
    }
}

impl Drop for Helper {
    /// Closes the queue and waits for the thread. A clean close has already waited for the
    /// write in flight, but a poisoned writer's drop does not: this join is what makes that
    /// write land before the writer lock (dropped after the writer's state) is released, so
    /// it can never reach a segment that the next writer already holds.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemStorage, OpenMode, Storage};
    use std::path::Path;

    fn file(storage: &MemStorage) -> Arc<dyn StorageFile> {
        storage.create_dir_all(Path::new("/d")).unwrap();
        storage
            .open(Path::new("/d/f"), OpenMode::CreateNew)
            .unwrap()
    }

    /// A file that runs `.1` before each write: a sleep makes the writes take a while, as a
    /// device under load does; a wait on a gate holds them in flight until a test lets go.
    /// (Not `MemStorage::set_faults`: its hook runs under the storage's lock, so a test's own
    /// read would wait for the slow write and pass whether or not drop joined the helper.)
    struct BeforeWrite(Arc<dyn StorageFile>, Box<dyn Fn() + Send + Sync>);

    impl std::fmt::Debug for BeforeWrite {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("BeforeWrite")
                .field(&self.0)
                .finish_non_exhaustive()
        }
    }

    impl StorageFile for BeforeWrite {
        fn len(&self) -> io::Result<u64> {
            self.0.len()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.0.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            (self.1)();
            self.0.write_at(buf, offset)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.0.sync_data()
        }
        fn contents(&self) -> io::Result<crate::storage::Contents> {
            self.0.contents()
        }
    }

    #[test]
    fn a_write_in_flight_lands_before_the_writer_side_is_dropped() {
        // A poisoned writer's drop does not wait for the write in flight; dropping the helper
        // must, or the write could land after the writer lock is released.
        let storage = MemStorage::new();
        let slow = || std::thread::sleep(std::time::Duration::from_millis(200));
        let file: Arc<dyn StorageFile> = Arc::new(BeforeWrite(file(&storage), Box::new(slow)));
        let mut ahead = Ahead::default();
        assert!(ahead.ready());
        let job = Job {
            file,
            buf: b"late".to_vec(),
            offset: 0,
            last_seq: 1,
            writeback: None,
            seal: None,
        };
        assert!(ahead.hand_over(job).is_ok());
        drop(ahead);
        assert_eq!(storage.file_bytes(Path::new("/d/f")).unwrap(), b"late");
    }

    #[test]
    fn a_write_in_flight_is_busy_and_its_answer_found_early_is_kept_for_the_wait() {
        let storage = MemStorage::new();
        let (open, gate) = mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        let wait = move || {
            let _ = gate.lock().unwrap().recv();
        };
        let file: Arc<dyn StorageFile> = Arc::new(BeforeWrite(file(&storage), Box::new(wait)));
        let mut ahead = Ahead::default();
        assert!(ahead.ready());
        assert!(!ahead.busy(), "nothing in flight");
        let job = Job {
            file,
            buf: b"gated".to_vec(),
            offset: 0,
            last_seq: 1,
            writeback: None,
            seal: None,
        };
        assert!(ahead.hand_over(job).is_ok());
        assert!(ahead.busy(), "the write waits at the gate");
        open.send(()).unwrap();
        while ahead.busy() {
            std::thread::yield_now();
        }
        let (flight, result) = ahead.wait().expect("the answer found early is not lost");
        assert_eq!(flight.last_seq, 1);
        result.unwrap();
        assert!(ahead.wait().is_none() && !ahead.busy());
        assert_eq!(storage.file_bytes(Path::new("/d/f")).unwrap(), b"gated");
    }

    #[test]
    fn the_helper_checksums_the_records_it_is_handed_unsealed() {
        use crate::format::{self, Decoded, RecordKind, RecordMeta};
        let storage = MemStorage::new();
        let file = file(&storage);
        let seed = format::binding_seed(&format::binding(1, 1));
        let mut buf = Vec::new();
        for seq in 1..=3 {
            let meta = RecordMeta {
                seq,
                timestamp_nanos: seq,
                kind: RecordKind::Data,
            };
            format::encode_unsealed(&mut buf, meta, None, b"abc");
        }
        let mut ahead = Ahead::default();
        assert!(ahead.ready());
        let job = Job {
            file,
            buf,
            offset: 0,
            last_seq: 3,
            writeback: None,
            seal: Some(seed),
        };
        assert!(ahead.hand_over(job).is_ok());
        ahead.wait().expect("in flight").1.unwrap();
        let bytes = storage.file_bytes(Path::new("/d/f")).unwrap();
        for at in (0..3).map(|i| i * format::encoded_len(0, 3)) {
            let got = format::decode_record_seeded(&bytes[at..], seed, 64, 64);
            assert!(
                matches!(got, Decoded::Record(r) if r.payload == b"abc"),
                "{got:?}"
            );
        }
    }

    #[test]
    fn nothing_in_flight_waits_for_nothing() {
        assert!(Ahead::default().wait().is_none());
    }

    #[test]
    fn a_handed_over_write_lands_and_its_buffer_comes_back_for_the_next_round() {
        let storage = MemStorage::new();
        let file = file(&storage);
        let mut ahead = Ahead::default();
        assert!(ahead.ready());
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(b"written ahead");
        let job = Job {
            file: Arc::clone(&file),
            buf,
            offset: 3,
            last_seq: 7,
            writeback: None,
            seal: None,
        };
        assert!(ahead.hand_over(job).is_ok());
        let (flight, result) = ahead.wait().expect("a write was in flight");
        assert_eq!(
            flight,
            Flight {
                offset: 3,
                last_seq: 7
            }
        );
        result.unwrap();
        assert!(ahead.wait().is_none(), "waited for once");
        let spare = ahead.take_spare();
        assert!(
            spare.is_empty() && spare.capacity() >= 1 << 16,
            "no new buffer per round"
        );
        assert_eq!(
            storage.file_bytes(Path::new("/d/f")).unwrap(),
            b"\0\0\0written ahead"
        );
    }
}
