//! CSV records, for the `csv` step of module pipelines (PostgreSQL's `csvlog`) and for the
//! `decode_csv_fields` processor, which share this one reader: `csv_core` does the quoting
//! rules (RFC 4180, `""` inside quotes), this only feeds it a line and collects the fields.

use std::cell::RefCell;

thread_local! {
    /// One parser per separator and thread: building a `csv_core` reader computes its state
    /// machine over all 256 byte values (tens of microseconds), so it is built once and reset.
    static READERS: RefCell<Vec<(u8, csv_core::Reader)>> = const { RefCell::new(Vec::new()) };
}

/// The fields of the first CSV record of `input`.
pub fn first_record(sep: u8, input: &[u8]) -> Result<Vec<String>, String> {
    READERS.with(|cell| {
        let mut readers = cell.borrow_mut();
        let idx = match readers.iter().position(|(s, _)| *s == sep) {
            Some(i) => i,
            None => {
                readers.push((sep, csv_core::ReaderBuilder::new().delimiter(sep).build()));
                readers.len() - 1
            }
        };
        let rdr = &mut readers[idx].1;
        rdr.reset();
        // A record is never longer than its input; ends are one per field.
        let mut out = vec![0u8; input.len() + 1];
        let mut ends = vec![0usize; input.len() + 2];
        let (mut pos, mut nout, mut nend) = (0, 0, 0);
        loop {
            let (res, i, o, e) =
                rdr.read_record(&input[pos..], &mut out[nout..], &mut ends[nend..]);
            pos += i;
            nout += o;
            nend += e;
            match res {
                csv_core::ReadRecordResult::InputEmpty if pos < input.len() => continue,
                // Input done: an empty read ends the last record.
                csv_core::ReadRecordResult::InputEmpty => {
                    let (res, _, o, e) = rdr.read_record(&[], &mut out[nout..], &mut ends[nend..]);
                    nout += o;
                    nend += e;
                    if !matches!(res, csv_core::ReadRecordResult::Record) {
                        return Err("no CSV record".into());
                    }
                    break;
                }
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => return Err("no CSV record".into()),
                csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {
                    return Err("CSV record larger than its input".into());
                }
            }
        }
        let _ = nout;
        let mut start = 0;
        Ok(ends[..nend]
            .iter()
            .map(|&end| {
                let f = String::from_utf8_lossy(&out[start..end]).into_owned();
                start = end;
                f
            })
            .collect())
    })
}
