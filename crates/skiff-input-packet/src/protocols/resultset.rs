//! What the SQL protocols (mysql, pgsql) share: the result set kept for `response` (at most
//! `max_rows` rows of at most `max_row_length` bytes, rendered as CSV as Packetbeat renders
//! it) and the `method` taken from a statement.

/// The rows of a result set kept for the `response` text.
#[derive(Debug, Default, Clone)]
pub struct ResultText {
    /// Column names.
    pub columns: Vec<String>,
    /// The kept rows.
    pub rows: Vec<Vec<String>>,
}

impl ResultText {
    /// Keeps a row when fewer than `max_rows` are kept, cutting its cells once the row's text
    /// reaches `max_row_length` bytes (as Packetbeat: cells past the limit are left out, the
    /// cell crossing it is cut).
    pub fn push_row<I, S>(&mut self, cells: I, max_rows: usize, max_row_length: usize)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        if self.rows.len() >= max_rows {
            return;
        }
        let mut row = Vec::new();
        let mut len = 0usize;
        for cell in cells {
            if len >= max_row_length {
                break;
            }
            let c = cell.as_ref();
            let take = c.len().min(max_row_length - len);
            row.push(String::from_utf8_lossy(&c[..take]).into_owned());
            len += take;
        }
        self.rows.push(row);
    }

    /// Whether another row would be kept.
    pub fn wants_rows(&self, max_rows: usize) -> bool {
        self.rows.len() < max_rows
    }

    /// The CSV text: the column line, then one line per kept row (empty without columns).
    pub fn csv(&self) -> String {
        let mut out = String::new();
        if self.columns.is_empty() {
            return out;
        }
        for line in std::iter::once(&self.columns).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_cell(&mut out, cell);
            }
            out.push('\n');
        }
        out
    }

    /// Bytes held.
    pub fn held_bytes(&self) -> usize {
        self.columns.iter().map(String::len).sum::<usize>()
            + self.rows.iter().flatten().map(String::len).sum::<usize>()
    }
}

/// Writes a cell with the quoting rules of Go's `encoding/csv` (which Packetbeat uses): quote
/// when it holds a comma, a quote, CR/LF or starts with a space.
fn csv_cell(out: &mut String, cell: &str) {
    let quote =
        cell.contains([',', '"', '\r', '\n']) || cell.starts_with([' ', '\t']) || cell == r"\.";
    if !quote {
        out.push_str(cell);
        return;
    }
    out.push('"');
    for c in cell.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// The statement trimmed of blanks and its first word upper-cased (`method`).
pub fn statement_method(query: &str) -> (String, String) {
    let q = query.trim_matches([' ', '\r', '\n', '\t']);
    let first = q.split([' ', '\r', '\n', '\t']).next().unwrap_or("");
    (q.to_owned(), first.to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_like_go() {
        let mut t = ResultText {
            columns: vec!["a".into(), "b".into()],
            rows: Vec::new(),
        };
        t.push_row(["x,y", " z"], 10, 1024);
        t.push_row(["q\"", ""], 10, 1024);
        assert_eq!(t.csv(), "a,b\n\"x,y\",\" z\"\n\"q\"\"\",\n");
    }

    #[test]
    fn rows_and_lengths_are_capped() {
        let mut t = ResultText::default();
        for _ in 0..5 {
            t.push_row(["abcdef", "ghi"], 2, 4);
        }
        assert_eq!(
            t.rows,
            vec![vec!["abcd".to_owned()], vec!["abcd".to_owned()]]
        );
    }

    #[test]
    fn method_is_first_word() {
        assert_eq!(
            statement_method("\r\n select 1\n"),
            ("select 1".to_owned(), "SELECT".to_owned())
        );
    }
}
