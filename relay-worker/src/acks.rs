//! Acknowledging deliveries in runs: one `basic.ack` with `multiple` covers
//! every finished delivery up to a tag, instead of one frame per delivery.
//!
//! Deliveries finish out of order (confirms race, failures take a detour), so
//! the ackable tag is the highest finished one below the oldest unfinished one.
//! Deliveries settled on their own (a `nack`) are simply forgotten: the broker
//! no longer counts them as outstanding, so a later multiple-ack skips them.

use std::collections::BTreeSet;

/// Delivery tags of one channel between receipt and acknowledgement.
#[derive(Debug, Default)]
pub struct Acks {
    unfinished: BTreeSet<u64>,
    finished: BTreeSet<u64>,
}

impl Acks {
    /// A delivery arrived.
    pub fn received(&mut self, tag: u64) {
        self.unfinished.insert(tag);
    }

    /// A delivery is done and may be acked.
    pub fn finished(&mut self, tag: u64) {
        if self.unfinished.remove(&tag) {
            self.finished.insert(tag);
        }
    }

    /// A delivery was settled by other means (nack); never ack it.
    pub fn forget(&mut self, tag: u64) {
        self.unfinished.remove(&tag);
    }

    /// Finished deliveries waiting for their ack.
    pub fn waiting(&self) -> usize {
        self.finished.len()
    }

    /// The tag to ack with `multiple = true` now, if any; it and every finished
    /// tag below it are then considered acked.
    pub fn take(&mut self) -> Option<u64> {
        let limit = self.unfinished.first().copied().unwrap_or(u64::MAX);
        let tag = *self.finished.range(..limit).next_back()?;
        self.finished = self.finished.split_off(&(tag + 1));
        Some(tag)
    }

    /// Every finished delivery, before its channel closes: the tag to ack
    /// with `multiple = true`, and the tags above an unfinished one, to ack
    /// one by one. Unfinished deliveries stay unacked (the close returns them).
    pub fn take_all(&mut self) -> (Option<u64>, Vec<u64>) {
        let run = self.take();
        let singles = std::mem::take(&mut self.finished).into_iter().collect();
        (run, singles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_completions_are_acked_in_one_run() {
        let mut acks = Acks::default();
        (1..=5).for_each(|t| acks.received(t));
        (1..=5).for_each(|t| acks.finished(t));
        assert_eq!(acks.take(), Some(5));
        assert_eq!(acks.take(), None);
    }

    #[test]
    fn an_unfinished_delivery_holds_back_the_ones_after_it() {
        let mut acks = Acks::default();
        (1..=5).for_each(|t| acks.received(t));
        for t in [1, 2, 4, 5] {
            acks.finished(t);
        }
        assert_eq!(acks.take(), Some(2));
        assert_eq!(acks.waiting(), 2);
        acks.finished(3);
        assert_eq!(acks.take(), Some(5));
    }

    #[test]
    fn a_nacked_delivery_does_not_block_and_is_never_acked() {
        let mut acks = Acks::default();
        (1..=3).for_each(|t| acks.received(t));
        acks.forget(2);
        acks.finished(3);
        assert_eq!(acks.take(), None, "1 is still unfinished");
        acks.finished(1);
        assert_eq!(acks.take(), Some(3));
        acks.finished(2);
        assert_eq!(acks.take(), None, "a forgotten tag never becomes ackable");
    }

    #[test]
    fn before_a_close_finished_deliveries_above_an_unfinished_one_are_acked_singly() {
        let mut acks = Acks::default();
        (1..=6).for_each(|t| acks.received(t));
        for t in [1, 2, 4, 6] {
            acks.finished(t);
        }
        assert_eq!(acks.take_all(), (Some(2), vec![4, 6]));
        assert_eq!(acks.waiting(), 0);
        assert_eq!(acks.take_all(), (None, vec![]));
    }
}
