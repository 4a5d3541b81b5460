//! TCP reassembly of one direction: sequence tracking, retransmissions, overlaps, a small
//! reorder buffer, and gaps.
//!
//! Packetbeat has no reorder buffer: a segment that arrives early is a gap, and the one it
//! overtook is then dropped as a retransmission, so one reordered pair loses a transaction.
//! skiff holds up to `max_out_of_order` early segments per direction and reports a gap only
//! when the hole is still open after that many, or when the connection ends.

/// What the tracker hands on, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// In-order bytes.
    Data(Vec<u8>),
    /// This many bytes were never captured.
    Gap(u64),
    /// The direction closed.
    Fin,
}

#[derive(Debug)]
struct Early {
    seq: u32,
    data: Vec<u8>,
    fin: bool,
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub struct DirState {
    next: Option<u32>,
    early: Vec<Early>,
    early_bytes: usize,
    /// The direction has sent FIN.
    pub fin: bool,
    /// The initial sequence number of its SYN, if seen.
    pub isn: Option<u32>,
    /// Segments dropped as retransmissions.
    pub retransmits: u64,
}

/// `a - b` in sequence space.
fn diff(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

impl DirState {
    /// Bytes held in the reorder buffer.
    pub fn held_bytes(&self) -> usize {
        self.early_bytes
    }

    /// Takes one segment; pushes what it releases onto `steps`.
    pub fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        max_early: usize,
        steps: &mut Vec<Step>,
    ) {
        let mut seq = seq;
        if syn {
            // A retransmitted SYN must not rewind the stream.
            if self.isn.is_none() {
                self.isn = Some(seq);
                self.next = Some(seq.wrapping_add(1));
            }
            seq = seq.wrapping_add(1);
        }
        if payload.is_empty() && !fin {
            return;
        }
        let next = *self.next.get_or_insert(seq);
        let d = diff(seq, next);
        if d > 0 {
            // Early: hold it (a copy, bounded) and wait for the hole to fill.
            if !self.early.iter().any(|e| e.seq == seq) {
                self.early_bytes += payload.len();
                self.early.push(Early {
                    seq,
                    data: payload.to_vec(),
                    fin,
                });
                self.early.sort_by_key(|e| diff(e.seq, next));
            }
            if self.early.len() > max_early {
                self.release_with_gap(steps);
            }
            return;
        }
        self.accept(seq, payload, fin, steps);
        self.drain(steps);
    }

    fn accept(&mut self, seq: u32, payload: &[u8], fin: bool, steps: &mut Vec<Step>) {
        let Some(next) = self.next else { return };
        let overlap = (-diff(seq, next)).max(0) as usize;
        if overlap >= payload.len() && !payload.is_empty() {
            self.retransmits += 1;
            // A retransmitted FIN is still a FIN if we never saw it.
            if fin && !self.fin && overlap == payload.len() {
                self.fin = true;
                steps.push(Step::Fin);
            }
            return;
        }
        let new = &payload[overlap.min(payload.len())..];
        if !new.is_empty() {
            steps.push(Step::Data(new.to_vec()));
            self.next = Some(next.wrapping_add(new.len() as u32));
        }
        if fin && !self.fin {
            self.fin = true;
            self.next = self.next.map(|n| n.wrapping_add(1));
            steps.push(Step::Fin);
        }
    }

    fn drain(&mut self, steps: &mut Vec<Step>) {
        while let (Some(next), Some(first)) = (self.next, self.early.first()) {
            if diff(first.seq, next) > 0 {
                break;
            }
            let e = self.early.remove(0);
            self.early_bytes -= e.data.len();
            self.accept(e.seq, &e.data, e.fin, steps);
        }
    }

    fn release_with_gap(&mut self, steps: &mut Vec<Step>) {
        let (Some(next), Some(first)) = (self.next, self.early.first()) else {
            return;
        };
        let missing = diff(first.seq, next).max(0) as u64;
        if missing > 0 {
            steps.push(Step::Gap(missing));
            self.next = Some(first.seq);
        }
        self.drain(steps);
    }

    /// The connection ends: whatever is held is released after a gap.
    pub fn flush(&mut self, steps: &mut Vec<Step>) {
        while !self.early.is_empty() {
            self.release_with_gap(steps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(steps: &[Step]) -> Vec<u8> {
        steps
            .iter()
            .flat_map(|s| match s {
                Step::Data(d) => d.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn in_order_retransmit_overlap_and_reorder() {
        let mut d = DirState::default();
        let mut s = Vec::new();
        d.segment(100, true, false, b"", 4, &mut s);
        d.segment(101, false, false, b"abc", 4, &mut s);
        d.segment(101, false, false, b"abc", 4, &mut s); // retransmission
        d.segment(102, false, false, b"bcde", 4, &mut s); // overlap: "de" is new
        d.segment(109, false, false, b"ij", 4, &mut s); // early
        d.segment(106, false, false, b"fgh", 4, &mut s); // fills the hole
        assert_eq!(data(&s), b"abcdefghij");
        assert_eq!(d.retransmits, 1);
        assert_eq!(d.held_bytes(), 0);
    }

    #[test]
    fn a_hole_that_stays_open_is_a_gap() {
        let mut d = DirState::default();
        let mut s = Vec::new();
        d.segment(0, false, false, b"ab", 1, &mut s);
        d.segment(10, false, false, b"x", 1, &mut s);
        d.segment(11, false, true, b"y", 1, &mut s);
        assert_eq!(
            s,
            vec![
                Step::Data(b"ab".to_vec()),
                Step::Gap(8),
                Step::Data(b"x".to_vec()),
                Step::Data(b"y".to_vec()),
                Step::Fin
            ]
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut d = DirState::default();
        let mut s = Vec::new();
        d.segment(u32::MAX - 1, false, false, b"ab", 4, &mut s);
        d.segment(0, false, false, b"cd", 4, &mut s);
        assert_eq!(data(&s), b"abcd");
    }
}
