//! The streaming line splitter: bytes from a file in, lines with their byte ranges out.
//!
//! One buffer per reader, refilled by `read` in chunks of `buffer_size`; lines are handed out
//! as slices of it (no copy for the common case of many lines per chunk). A line longer than
//! `message_max_bytes` keeps its first `message_max_bytes` bytes in the buffer and the rest is
//! read through a small window and thrown away until its terminator arrives, so memory is
//! `message_max_bytes + buffer_size` per reader whatever the file holds. The truncated line is
//! emitted only once its terminator is found, with `end` after the terminator: committing it
//! never leaves the reader in the middle of a line after a restart.

use std::io::Read;

/// How lines end, in the file's own encoding.
#[derive(Clone, Debug)]
pub struct Terminator {
    /// The terminator's bytes (`\n` in UTF-8, `\n\0` in UTF-16LE, ...).
    pub seq: Vec<u8>,
    /// The code unit size (1, or 2 for UTF-16): a terminator only counts at a multiple of it
    /// from the line start.
    pub unit: usize,
    /// For `auto`: a carriage return (encoded) to strip from the end of a line.
    pub strip: Option<Vec<u8>>,
}

impl Terminator {
    /// `\n`, stripping a preceding `\r`, in UTF-8.
    pub fn auto_utf8() -> Self {
        Terminator {
            seq: b"\n".to_vec(),
            unit: 1,
            strip: Some(b"\r".to_vec()),
        }
    }
}

/// One line, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct RawLine<'a> {
    /// The line's bytes without the terminator (cut at the limit when `truncated`).
    pub bytes: &'a [u8],
    /// Offset of its first byte in the file.
    pub start: u64,
    /// Offset just after its terminator (or after its last byte for a flushed partial line).
    pub end: u64,
    /// True when the line was longer than the limit and cut.
    pub truncated: bool,
}

/// Reads lines from `R` (a file), streaming.
pub struct LineReader<R> {
    src: R,
    term: Terminator,
    /// The searcher for a multi-byte terminator (boxed, and absent for one byte: it is large,
    /// and every open file has a reader).
    finder: Option<Box<memchr::memmem::Finder<'static>>>,
    max: usize,
    chunk: usize,
    buf: Vec<u8>,
    /// Start of the current (incomplete) line in `buf`.
    head: usize,
    /// End of valid data in `buf`.
    tail: usize,
    /// Where the terminator search resumes.
    scanned: usize,
    /// File offset of `buf[head]`.
    head_off: u64,
    /// In skip mode: the kept prefix length (at `buf[head..head + n]`) and the bytes dropped
    /// after it so far.
    skip: Option<(usize, u64)>,
    /// Whether the last `fill` found the end of the file.
    eof: bool,
}

impl<R: Read> LineReader<R> {
    /// A reader starting at file offset `offset` (the source must be positioned there).
    pub fn new(src: R, offset: u64, term: Terminator, max: usize, chunk: usize) -> Self {
        let finder = (term.seq.len() > 1)
            .then(|| Box::new(memchr::memmem::Finder::new(&term.seq).into_owned()));
        let chunk = chunk.max(64);
        LineReader {
            src,
            finder,
            max: max.max(1),
            chunk,
            buf: vec![0; chunk.clamp(4096, 64 << 10)],
            head: 0,
            tail: 0,
            scanned: 0,
            head_off: offset,
            skip: None,
            eof: false,
            term,
        }
    }

    /// The source.
    pub fn source_mut(&mut self) -> &mut R {
        &mut self.src
    }

    /// Frees the buffer while no partial line is held (an idle reader costs no buffer).
    pub fn release(&mut self) {
        if self.pending() == 0 && self.skip.is_none() {
            self.buf = Vec::new();
            self.head = 0;
            self.tail = 0;
            self.scanned = 0;
        }
    }

    /// The offset just after the last line handed out (where the next line starts).
    pub fn offset(&self) -> u64 {
        self.head_off
    }

    /// The offset up to which the file has been read (includes a buffered partial line).
    pub fn read_offset(&self) -> u64 {
        self.off(self.tail)
    }

    /// Bytes of an incomplete line held (0 when between lines).
    pub fn pending(&self) -> u64 {
        self.read_offset() - self.head_off
    }

    /// Bytes of memory the reader holds (for the memory budget).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// True when the last read attempt hit the end of the file.
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    fn off(&self, i: usize) -> u64 {
        let base = self.head_off + (i - self.head) as u64;
        match self.skip {
            Some((n, gap)) if i >= self.head + n => base + gap,
            _ => base,
        }
    }

    /// The next complete line, reading more as needed; `None` at the end of the file for now.
    pub fn next_line(&mut self) -> std::io::Result<Option<RawLine<'_>>> {
        loop {
            if let Some((at, len)) = self.find_terminator() {
                return Ok(Some(self.emit(at, len)));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Hands out the held incomplete line (the file has been quiet: its writer is done with it).
    pub fn take_partial(&mut self) -> Option<RawLine<'_>> {
        if self.pending() == 0 {
            return None;
        }
        let at = self.tail;
        Some(self.emit(at, 0))
    }

    fn find_terminator(&mut self) -> Option<(usize, usize)> {
        let tlen = self.term.seq.len();
        let mut from = match self.skip {
            Some((n, _)) => self.scanned.max(self.head + n),
            None => self.scanned.max(self.head),
        };
        while from < self.tail {
            let idx = match &self.finder {
                Some(f) => f.find(&self.buf[from..self.tail]),
                None => memchr::memchr(
                    self.term.seq.first().copied().unwrap_or(b'\n'),
                    &self.buf[from..self.tail],
                ),
            };
            let Some(idx) = idx else { break };
            let at = from + idx;
            if self.term.unit > 1
                && !(self.off(at) - self.head_off).is_multiple_of(self.term.unit as u64)
            {
                from = at + 1;
                continue;
            }
            return Some((at, tlen));
        }
        self.scanned = self.tail.saturating_sub(tlen - 1).max(self.head);
        None
    }

    /// Hands out `buf[head..at]` as a line ending with a terminator of `tlen` bytes at `at`.
    fn emit(&mut self, at: usize, tlen: usize) -> RawLine<'_> {
        let start = self.head_off;
        let end = self.off(at) + tlen as u64;
        let (mut len, mut truncated) = match self.skip.take() {
            Some((n, _)) => (n, true),
            None => (at - self.head, false),
        };
        if len > self.max {
            len = self.cut(self.max);
            truncated = true;
        }
        let lo = self.head;
        self.head = at + tlen;
        self.scanned = self.head;
        self.head_off = end;
        let mut bytes = &self.buf[lo..lo + len];
        if !truncated
            && let Some(cr) = &self.term.strip
            && bytes.ends_with(cr)
        {
            bytes = &bytes[..bytes.len() - cr.len()];
        }
        RawLine {
            bytes,
            start,
            end,
            truncated,
        }
    }

    /// The cut point for a line too long: `max`, rounded down to a code unit.
    fn cut(&self, max: usize) -> usize {
        max - max % self.term.unit
    }

    /// Reads more data; false at the end of the file.
    fn fill(&mut self) -> std::io::Result<bool> {
        let tlen = self.term.seq.len();
        if let Some((n, gap)) = self.skip {
            // Drop what was scanned after the prefix, keeping a possible partial terminator.
            let keep_from = self.scanned.max(self.head + n);
            if keep_from > self.head + n {
                let dropped = keep_from - (self.head + n);
                self.buf.copy_within(keep_from..self.tail, self.head + n);
                self.tail -= dropped;
                self.scanned = self.head + n;
                self.skip = Some((n, gap + dropped as u64));
            }
        } else if self.tail - self.head > self.max + tlen {
            // Longer than the limit with no terminator: keep the prefix, skip the rest.
            let n = self.cut(self.max);
            self.skip = Some((n, 0));
            return self.fill();
        }
        if self.head > 0 && self.buf.len() - self.tail < self.chunk {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.scanned -= self.head.min(self.scanned);
            self.head = 0;
        }
        if self.buf.len() - self.tail < self.chunk.min(4096) {
            let want = (self.tail + self.chunk)
                .max(self.buf.len() * 2)
                .min(self.max + tlen + self.chunk + 1);
            if want > self.buf.len() {
                // Exactly: `resize` alone may double the capacity, and the documented bound
                // is `message_max_bytes + buffer_size`, not twice that.
                self.buf.reserve_exact(want - self.buf.len());
                self.buf.resize(want, 0);
            }
        }
        let room = (self.buf.len() - self.tail).min(self.chunk);
        let n = loop {
            match self.src.read(&mut self.buf[self.tail..self.tail + room]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.tail += n;
        self.eof = n == 0;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(
        data: &[u8],
        term: Terminator,
        max: usize,
        chunk: usize,
    ) -> Vec<(Vec<u8>, u64, u64, bool)> {
        let mut r = LineReader::new(data, 0, term, max, chunk);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push((l.bytes.to_vec(), l.start, l.end, l.truncated));
        }
        if let Some(l) = r.take_partial() {
            out.push((l.bytes.to_vec(), l.start, l.end, l.truncated));
        }
        out
    }

    #[test]
    fn splits_with_offsets_and_strips_cr() {
        let got = all(b"ab\r\ncd\n\nlast", Terminator::auto_utf8(), 100, 64);
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), 0, 4, false),
                (b"cd".to_vec(), 4, 7, false),
                (b"".to_vec(), 7, 8, false),
                (b"last".to_vec(), 8, 12, false),
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_and_rest_skipped() {
        let mut data = vec![b'x'; 10_000];
        data.push(b'\n');
        data.extend_from_slice(b"ok\n");
        let got = all(&data, Terminator::auto_utf8(), 100, 64);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), 100);
        assert_eq!((got[0].1, got[0].2, got[0].3), (0, 10_001, true));
        assert_eq!(got[1], (b"ok".to_vec(), 10_001, 10_004, false));
    }

    #[test]
    fn line_exactly_at_limit_is_not_truncated() {
        for chunk in [64, 100, 101, 4096] {
            let mut data = vec![b'y'; 100];
            data.push(b'\n');
            let got = all(&data, Terminator::auto_utf8(), 100, chunk);
            assert_eq!(got, vec![(vec![b'y'; 100], 0, 101, false)], "chunk {chunk}");
        }
    }

    #[test]
    fn multibyte_terminator_across_chunks_and_utf16_alignment() {
        let term = Terminator {
            seq: b"\r\n".to_vec(),
            unit: 1,
            strip: None,
        };
        let data =
            b"aaaaaaa\r\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\nc";
        let got = all(data, term, 1000, 64);
        assert_eq!(got[0].0, b"aaaaaaa");
        assert_eq!(got[1].0.len(), 63);
        assert_eq!(got[2].0, b"c");

        // UTF-16LE: "\u{0a00}" contains the byte pair 00 0a at an odd offset, not a terminator.
        let text = "a\u{0a00}b\nz\n";
        let bytes: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let term = Terminator {
            seq: vec![b'\n', 0],
            unit: 2,
            strip: None,
        };
        let got = all(&bytes, term, 1000, 64);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].2, 8);
    }

    #[test]
    fn truncated_line_in_skip_mode_with_small_chunks_counts_offsets() {
        let mut data = Vec::new();
        for i in 0..50 {
            data.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 1000 + i));
            data.push(b'\n');
        }
        let got = all(&data, Terminator::auto_utf8(), 300, 64);
        assert_eq!(got.len(), 50);
        let mut pos = 0u64;
        for (i, l) in got.iter().enumerate() {
            assert_eq!(l.1, pos);
            pos += 1000 + i as u64 + 1;
            assert_eq!(l.2, pos);
            assert!(l.3);
            assert_eq!(l.0.len(), 300);
        }
    }
}
