//! What a power loss leaves of a [`MemStorage`]: each file's durable bytes plus each pending
//! write kept, dropped, torn into zeros or garbage, or cut at a sector, and a prefix of each
//! directory's pending entry changes (FORMAT.md §6; docs/TESTING.md, family 1).

use super::{CrashMode, DirOp, Inode, MemState, MemStorage, PendingWrite, apply_write};
use std::sync::{Arc, Mutex};

impl MemStorage {
    /// The storage a crash would leave behind. Locks are released; faults and trace start empty.
    #[must_use]
    pub fn crash(&self, mode: CrashMode) -> MemStorage {
        let st = self.lock();
        let mut rng = Rng(match mode {
            CrashMode::Torn { seed } => seed ^ 0x9e37_79b9_7f4a_7c15,
            _ => 1,
        });
        let keep_dir_ops = match mode {
            CrashMode::KeepAll => st.pending_dir.len(),
            CrashMode::DropUnsynced => 0,
            CrashMode::Torn { .. } => rng.below(st.pending_dir.len() as u64 + 1) as usize,
        };
        let mut entries = st.durable.clone();
        for op in &st.pending_dir[..keep_dir_ops] {
            match op {
                DirOp::Link(p, ino) => entries.insert(p.clone(), *ino),
                DirOp::Unlink(p) => entries.remove(p),
            };
        }
        let mut out = MemState {
            dirs: st.dirs.clone(),
            next_ino: st.next_ino,
            ..MemState::default()
        };
        // In name order: the generator's draws must not depend on a hash map's order.
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_unstable();
        for (path, ino) in entries {
            out.inodes.entry(ino).or_insert_with(|| {
                let bytes = crash_contents(&st.inodes[&ino], mode, &mut rng);
                Inode {
                    durable: bytes.clone(),
                    live: bytes,
                    ..Inode::default()
                }
            });
            out.live.insert(path.clone(), ino);
            out.durable.insert(path, ino);
        }
        MemStorage {
            state: Arc::new(Mutex::new(out)),
        }
    }
}

fn crash_contents(inode: &Inode, mode: CrashMode, rng: &mut Rng) -> Vec<u8> {
    match mode {
        CrashMode::KeepAll => return inode.live.clone(),
        CrashMode::DropUnsynced => return inode.durable.clone(),
        CrashMode::Torn { .. } => {}
    }
    let mut bytes = inode.durable.clone();
    for w in &inode.pending {
        match w {
            PendingWrite::SetLen(len) => {
                if rng.below(2) == 0 {
                    bytes.resize(*len as usize, 0);
                }
            }
            PendingWrite::Write { offset, data } => {
                let (keep, fill) = match rng.below(5) {
                    0 => (0, None),
                    1 | 2 => (data.len(), None),
                    3 => (rng.below(data.len() as u64 + 1) as usize, Some(0u8)),
                    _ => (rng.below(data.len() as u64 + 1) as usize, Some(0xa5)),
                };
                let mut torn = data[..keep].to_vec();
                if let Some(fill) = fill {
                    torn.extend(
                        (keep..data.len()).map(|i| if fill == 0 { 0 } else { rng.byte(i) }),
                    );
                }
                apply_write(&mut bytes, *offset, &torn);
            }
        }
    }
    bytes
}

/// A small deterministic generator (xorshift64*), so the library needs no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn byte(&mut self, _i: usize) -> u8 {
        (self.next() >> 32) as u8
    }
}
