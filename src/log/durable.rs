//! The durable half of the writer: handing pending records to the OS, zero-filling ahead,
//! group-commit sync, and the watermark slot written after each sync (FORMAT.md §6).

use super::ahead::Job;
use super::{Active, Log, WRITEBACK_EVERY, WriteState};
use crate::error::{Error, Result};
use crate::format::{self, WatermarkSlot};
use std::sync::Arc;

impl Log {
    /// Writes the pending records at the end of the segment with one write, after the write in
    /// flight on the helper, if any (`ahead.rs`).
    ///
    /// On failure the file is truncated back to where the write started and the pending records
    /// are dropped. Without a write buffer they are all from the failing call, which reports the
    /// error, so their sequence numbers are free again. With a write buffer, earlier calls were
    /// already told their sequence numbers, and deferred `append_and_sync` records belong to
    /// callers waiting on a sync, so the writer is poisoned instead of reusing them.
    /// If the truncation fails too, the writer is poisoned either way.
    pub(super) fn flush_locked(&self, st: &mut WriteState) -> Result<()> {
        self.settle(st)?;
        if st.pending.is_empty() {
            debug_assert_eq!(st.written_seq, st.next_seq - 1, "nothing unwritten is left");
            return Ok(());
        }
        let start = st.seg.len;
        let end = start + st.pending.len() as u64;
        self.preallocate_for(st)?;
        Self::seal_pending(st);
        if let Err(e) = st.seg.file.write_at(&st.pending, start) {
            let buffered = self.options.write_buffer > 0 || st.pending_deferred;
            let err = self.failed_write(&st.seg, start, e, buffered);
            st.next_seq -= st.pending_records;
            st.pending.clear();
            st.pending_records = 0;
            st.pending_deferred = false;
            st.pending_unsealed = false;
            return Err(err);
        }
        st.pending.clear();
        st.written_seq = st.next_seq - 1;
        if let Some((offset, len)) = Self::written(st, end) {
            // A hint only: its failure changes nothing about durability.
            let _ = st.seg.file.start_writeback(offset, len);
        }
        crate::kill_point("append_written");
        Ok(())
    }

    /// Hands a full write buffer to the helper thread, which writes it while the caller goes
    /// on appending into a second buffer (`ahead.rs`). Without a write buffer the write is
    /// made at once, as `Options::write_buffer` promises. Records of waiting `append_and_sync`
    /// callers may go either way: their sync waits for the write, and its failure poisons.
    pub(super) fn flush_ahead(&self, st: &mut WriteState) -> Result<()> {
        if self.options.write_buffer == 0 || !st.ahead.ready() {
            return self.flush_locked(st);
        }
        // Checksums still missing go with the buffer to the helper, unless it is still busy
        // with the last one: then they are filled here, instead of waiting for it idle.
        if st.pending_unsealed && st.ahead.busy() {
            Self::seal_pending(st);
        }
        self.settle(st)?;
        let start = st.seg.len;
        let end = start + st.pending.len() as u64;
        self.preallocate_for(st)?;
        let buf = std::mem::replace(&mut st.pending, st.ahead.take_spare());
        let job = Job {
            file: Arc::clone(&st.seg.file),
            buf,
            offset: start,
            last_seq: st.next_seq - 1,
            writeback: Self::written(st, end),
            seal: std::mem::take(&mut st.pending_unsealed).then_some(st.seg.seed),
        };
        if let Err(mut job) = st.ahead.hand_over(job) {
            // The helper stopped: write here, with the helper's failure rule.
            job.run()
                .map_err(|e| self.failed_write(&st.seg, start, e, true))?;
            st.written_seq = job.last_seq;
            st.ahead.give_back(job.buf);
        }
        Ok(())
    }

    /// Fills the checksums the pending records were encoded without, if any.
    fn seal_pending(st: &mut WriteState) {
        if std::mem::take(&mut st.pending_unsealed) {
            format::seal_records(&mut st.pending, st.seg.seed);
        }
    }

    /// Waits for the write in flight on the helper. Its records are buffered appends whose
    /// callers were told their sequence numbers, so a failure poisons.
    pub(super) fn settle(&self, st: &mut WriteState) -> Result<()> {
        match st.ahead.wait() {
            None => Ok(()),
            Some((flight, Ok(()))) => {
                debug_assert!(flight.last_seq >= st.written_seq, "written in order");
                st.written_seq = flight.last_seq;
                Ok(())
            }
            Some((flight, Err(e))) => Err(self.failed_write(&st.seg, flight.offset, e, true)),
        }
    }

    /// After a failed write of records at `start`: cuts the file back there, and poisons the
    /// writer if that fails too or if the records were `buffered` (their callers were told
    /// their sequence numbers, or wait on a sync).
    fn failed_write(&self, seg: &Active, start: u64, e: std::io::Error, buffered: bool) -> Error {
        let err = Error::io_at("write", &seg.path, start, e);
        match seg.file.set_len(start) {
            Err(t) => self.poison(format!(
                "{err}; truncating back to {start} also failed: {t}"
            )),
            Ok(()) if buffered => self.poison(format!("{err}; buffered appends were lost")),
            Ok(()) => {}
        }
        err
    }

    /// Zero-fills ahead of the pending records if they reach past the zeros already there.
    fn preallocate_for(&self, st: &mut WriteState) -> Result<()> {
        let end = st.seg.len + st.pending.len() as u64;
        if end > st.seg.prealloc_end && st.seg.header.is_preallocated() {
            self.preallocate(&mut st.seg, end)?;
        }
        Ok(())
    }

    /// Books the pending records as written up to `end` (the caller has taken their bytes),
    /// and returns the range due for early writeback, if one is: letting the device start on
    /// what is written means sealing or a sync later waits for less.
    fn written(st: &mut WriteState, end: u64) -> Option<(u64, u64)> {
        st.seg.len = end;
        st.seg.has_records = true;
        st.pending_records = 0;
        st.pending_deferred = false;
        let from = st.seg.writeback_from;
        (end - from >= WRITEBACK_EVERY).then(|| {
            st.seg.writeback_from = end;
            (from, end - from)
        })
    }

    /// Writes zeros ahead of the data, up to a chunk past `needed` (within the segment size).
    /// A failure here changes no record, but the file's length is unknown: poison.
    ///
    /// `needed` is the end of the data about to be written, so the zeros start there: zeros
    /// below it would be overwritten at once, and before any sync, so they would buy no cheaper
    /// fdatasync and only double the page-cache writes of a large buffered flush.
    pub(super) fn preallocate(&self, seg: &mut Active, needed: u64) -> Result<()> {
        let chunk = self.options.preallocate.max(1);
        let target = needed.max((seg.prealloc_end + chunk).min(self.options.segment_size));
        let from = seg.prealloc_end.max(needed);
        let zeros = vec![0u8; (target - from).min(1 << 20) as usize];
        let mut at = from;
        while at < target {
            let n = (target - at).min(zeros.len() as u64) as usize;
            if let Err(e) = seg.file.write_at(&zeros[..n], at) {
                let err = Error::io_at("preallocate", &seg.path, at, e);
                self.poison(err.to_string());
                return Err(err);
            }
            at += n as u64;
        }
        seg.prealloc_end = target;
        Ok(())
    }

    /// Makes every record appended so far durable. Concurrent calls share one fdatasync
    /// (group commit, `group.rs`).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Poisoned`], or the I/O error of the failed fdatasync (which poisons).
    pub fn sync(&self) -> Result<()> {
        self.check_poison()?;
        let target = {
            let mut st = self.lock_state();
            self.flush_locked(&mut st)?;
            st.next_seq - 1
        };
        self.sync_through(target)
    }

    /// The leader's part of a sync: fdatasync, then record the watermark. Returns the sequence
    /// number now durable.
    pub(super) fn lead_sync(&self) -> Result<u64> {
        let (covered, end, number, file, path) = {
            let mut st = self.lock_state();
            // Followers' appends since their own flush ride along in this sync.
            self.flush_locked(&mut st)?;
            (
                st.next_seq - 1,
                st.seg.len,
                st.seg.number,
                Arc::clone(&st.seg.file),
                st.seg.path.clone(),
            )
        };
        if let Err(e) = file.sync_data() {
            let err = Error::io("fdatasync", &path, e);
            self.poison(err.to_string());
            return Err(err);
        }
        crate::kill_point("sync_synced");
        let mut st = self.lock_state();
        // After a rotation the sealing wrote the old segment's final slot itself.
        if st.seg.number == number && covered > st.seg.slot_seq {
            self.write_slot(&mut st.seg, covered, end)?;
        }
        Ok(covered)
    }

    /// Writes the next watermark slot (not synced: the next fdatasync carries it).
    ///
    /// `durable_end` is where the record `durable_seq` ends in this segment, or 0 when the
    /// caller does not know (the next open then scans the whole segment). Version 1 segments
    /// keep the field zero, as that version reserved it.
    pub(super) fn write_slot(
        &self,
        seg: &mut Active,
        durable_seq: u64,
        durable_end: u64,
    ) -> Result<()> {
        let generation = seg.slot_generation + 1;
        debug_assert!(durable_end <= seg.len, "a slot never vouches past the data");
        let (at, slot) = WatermarkSlot::placed(&seg.header, generation, durable_seq, durable_end);
        if let Err(e) = seg.file.write_at(&slot, at) {
            let err = Error::io_at("write watermark", &seg.path, at, e);
            self.poison(err.to_string());
            return Err(err);
        }
        seg.slot_generation = generation;
        seg.slot_seq = durable_seq;
        Ok(())
    }
}
