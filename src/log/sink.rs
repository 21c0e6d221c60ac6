//! Where an append puts the sequence numbers and locations it assigned: a `Vec` for batches, a
//! single slot for one record, so the common single append allocates nothing.

use super::Appended;

/// Where `append_into` puts what it assigned: a `Vec` for batches, one slot for single appends.
pub(super) trait Sink {
    fn len(&self) -> usize;
    fn push(&mut self, a: Appended);
    fn truncate(&mut self, len: usize);
    fn since(&self, start: usize) -> &[Appended];
}

impl Sink for Vec<Appended> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn push(&mut self, a: Appended) {
        Vec::push(self, a);
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
    fn since(&self, start: usize) -> &[Appended] {
        &self[start..]
    }
}

#[derive(Default)]
pub(super) struct OneOrMore {
    pub(super) first: Option<Appended>,
}

impl Sink for OneOrMore {
    fn len(&self) -> usize {
        usize::from(self.first.is_some())
    }
    fn push(&mut self, a: Appended) {
        assert!(self.first.is_none(), "a single append assigns one record");
        self.first = Some(a);
    }
    fn truncate(&mut self, len: usize) {
        if len == 0 {
            self.first = None;
        }
    }
    fn since(&self, start: usize) -> &[Appended] {
        match (&self.first, start) {
            (Some(a), 0) => std::slice::from_ref(a),
            _ => &[],
        }
    }
}
