//! Size-based file rotation, named and pruned as libbeat 8's file rotator does.
//!
//! Files are `{filename}-{YYYYMMDD}.ndjson`, then `{filename}-{YYYYMMDD}-1.ndjson`,
//! `-2`, ... for further files started the same day (the date is the local date when the file is
//! started). Files are never renamed. Rotating starts the next file; then the oldest files
//! (by date, then number) are deleted so that at most `number_of_files` remain, counting the
//! one being written. Only files matching that pattern exactly are ever considered or deleted.
//!
//! At start the newest existing file is the active one: with `rotate_on_startup` a new file is
//! started next to it, otherwise skiff appends to it. A file never grows past `rotate_every_kb`:
//! a write that would cross the limit goes to a new file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The date stamp used in file names (`YYYYMMDD`), from a clock (tests inject their own).
pub(crate) type DateFn = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Rotation settings.
#[derive(Clone, Debug)]
pub(crate) struct RotateConfig {
    pub dir: PathBuf,
    pub filename: String,
    pub max_size: u64,
    pub number_of_files: usize,
    pub permissions: u32,
    pub rotate_on_startup: bool,
    pub fsync: bool,
}

/// The rotating writer.
pub(crate) struct Rotator {
    cfg: RotateConfig,
    date: DateFn,
    active: PathBuf,
    file: Option<File>,
    size: u64,
}

/// A file of ours: its date stamp and number (0 for the first of the day).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Name {
    date: String,
    index: u64,
}

impl Rotator {
    /// Opens the active file as configured (creating the directory if needed); `startup`
    /// says whether `rotate_on_startup` applies (false when reopening after an error).
    pub fn open(cfg: RotateConfig, date: DateFn, startup: bool) -> std::io::Result<Self> {
        std::fs::create_dir_all(&cfg.dir)?;
        let existing = list(&cfg.dir, &cfg.filename)?;
        let mut r = Rotator {
            active: PathBuf::new(),
            file: None,
            size: 0,
            cfg,
            date,
        };
        match existing.last() {
            Some(_) if startup && r.cfg.rotate_on_startup => r.rotate()?,
            Some(newest) => {
                r.active = r.path_of(newest);
                r.open_active()?;
            }
            None => {
                r.active = r.path_of(&Name {
                    date: (r.date)(),
                    index: 0,
                });
                r.open_active()?;
            }
        }
        Ok(r)
    }

    /// The file being written.
    #[cfg(test)]
    pub fn active(&self) -> &Path {
        &self.active
    }

    /// Writes whole lines (`buf`, with each line ending at an offset in `ends`), starting a new
    /// file before a line that would take the current one past `max_size`. Returns the bytes
    /// written. Flushes (and fsyncs if configured) before returning.
    pub fn write_lines(&mut self, buf: &[u8], ends: &[usize]) -> std::io::Result<u64> {
        let mut chunk_start = 0;
        let mut line_start = 0;
        for &end in ends {
            let pending = (line_start - chunk_start) as u64;
            let len = (end - line_start) as u64;
            if self.size + pending > 0 && self.size + pending + len > self.cfg.max_size {
                self.write_chunk(&buf[chunk_start..line_start])?;
                self.rotate()?;
                chunk_start = line_start;
            }
            line_start = end;
        }
        self.write_chunk(&buf[chunk_start..line_start])?;
        if let Some(f) = &mut self.file {
            f.flush()?;
            if self.cfg.fsync {
                f.sync_data()?;
            }
        }
        Ok(line_start as u64)
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.open_active()?;
        }
        if let Some(f) = &mut self.file {
            f.write_all(chunk)?;
            self.size += chunk.len() as u64;
        }
        Ok(())
    }

    /// Starts the next file, then deletes the oldest beyond `number_of_files`.
    pub fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(f) = self.file.take()
            && self.cfg.fsync
        {
            f.sync_all()?;
        }
        let date = (self.date)();
        let next = list(&self.cfg.dir, &self.cfg.filename)?
            .into_iter()
            .filter(|n| n.date == date)
            .map(|n| n.index + 1)
            .max()
            .unwrap_or(0);
        self.active = self.path_of(&Name { date, index: next });
        self.open_active()?;
        self.purge()
    }

    fn purge(&self) -> std::io::Result<()> {
        let files: Vec<PathBuf> = list(&self.cfg.dir, &self.cfg.filename)?
            .iter()
            .map(|n| self.path_of(n))
            .filter(|p| *p != self.active)
            .collect();
        let keep = self.cfg.number_of_files.saturating_sub(1);
        if files.len() > keep {
            for old in &files[..files.len() - keep] {
                match std::fs::remove_file(old) {
                    Ok(()) => {
                        tracing::debug!(file = %old.display(), "deleted rotated output file")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn open_active(&mut self) -> std::io::Result<()> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(self.cfg.permissions)
            .open(&self.active)?;
        let meta = f.metadata()?;
        if meta.permissions().mode() & 0o777 != self.cfg.permissions {
            // `mode` on open is reduced by the umask; the configured permissions are what the
            // user asked for, so set them exactly.
            f.set_permissions(std::fs::Permissions::from_mode(self.cfg.permissions))?;
        }
        self.size = meta.len();
        self.file = Some(f);
        Ok(())
    }

    fn path_of(&self, n: &Name) -> PathBuf {
        let name = if n.index == 0 {
            format!("{}-{}.ndjson", self.cfg.filename, n.date)
        } else {
            format!("{}-{}-{}.ndjson", self.cfg.filename, n.date, n.index)
        };
        self.cfg.dir.join(name)
    }
}

/// Our files in `dir`, oldest first.
fn list(dir: &Path, filename: &str) -> std::io::Result<Vec<Name>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| parse_name(s, filename))
        {
            out.push(n);
        }
    }
    out.sort();
    Ok(out)
}

fn parse_name(name: &str, filename: &str) -> Option<Name> {
    let rest = name
        .strip_prefix(filename)?
        .strip_prefix('-')?
        .strip_suffix(".ndjson")?;
    let (date, index) = match rest.split_once('-') {
        Some((d, i)) if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => {
            (d, i.parse().ok()?)
        }
        Some(_) => return None,
        None => (rest, 0),
    };
    (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())).then(|| Name {
        date: date.to_owned(),
        index,
    })
}

/// Today's local date as `YYYYMMDD`.
pub(crate) fn local_date() -> String {
    chrono::Local::now().format("%Y%m%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn cfg(dir: &Path, max: u64, n: usize, on_startup: bool) -> RotateConfig {
        RotateConfig {
            dir: dir.to_owned(),
            filename: "skiff".into(),
            max_size: max,
            number_of_files: n,
            permissions: 0o600,
            rotate_on_startup: on_startup,
            fsync: false,
        }
    }

    fn clock(d: &Arc<Mutex<String>>) -> DateFn {
        let d = d.clone();
        Arc::new(move || d.lock().unwrap().clone())
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Lines of `len` bytes (newline included), numbered.
    fn lines(from: usize, count: usize, len: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for i in from..from + count {
            let s = format!("{i:0w$}\n", w = len - 1);
            buf.extend_from_slice(s.as_bytes());
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn parses_only_our_names() {
        assert_eq!(
            parse_name("skiff-20260102.ndjson", "skiff"),
            Some(Name {
                date: "20260102".into(),
                index: 0
            })
        );
        assert_eq!(
            parse_name("skiff-20260102-12.ndjson", "skiff"),
            Some(Name {
                date: "20260102".into(),
                index: 12
            })
        );
        for bad in [
            "skiff-2026010.ndjson",
            "skiff-20260102-.ndjson",
            "skiff-20260102-x.ndjson",
            "skiffy-20260102.ndjson",
            "skiff-20260102.json",
            "other.txt",
        ] {
            assert_eq!(parse_name(bad, "skiff"), None, "{bad}");
        }
    }

    #[test]
    fn rotates_by_size_keeps_number_of_files_and_never_exceeds_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("unrelated.ndjson"), "x").unwrap();
        let d = Arc::new(Mutex::new("20260102".to_string()));
        let mut r = Rotator::open(cfg(dir.path(), 100, 3, true), clock(&d), true).unwrap();
        // 10 lines of 30 bytes: 3 fit in a 100-byte file.
        let (buf, ends) = lines(0, 10, 30);
        assert_eq!(r.write_lines(&buf, &ends).unwrap(), 300);
        assert_eq!(
            names(dir.path()),
            [
                "skiff-20260102-1.ndjson",
                "skiff-20260102-2.ndjson",
                "skiff-20260102-3.ndjson",
                "unrelated.ndjson"
            ]
        );
        for n in ["skiff-20260102-1.ndjson", "skiff-20260102-2.ndjson"] {
            assert_eq!(std::fs::metadata(dir.path().join(n)).unwrap().len(), 90);
        }
        // The last 7 lines survive, in order, across the kept files.
        let all: String = [
            "skiff-20260102-1.ndjson",
            "skiff-20260102-2.ndjson",
            "skiff-20260102-3.ndjson",
        ]
        .iter()
        .map(|n| std::fs::read_to_string(dir.path().join(n)).unwrap())
        .collect();
        let got: Vec<usize> = all.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(got, (3..10).collect::<Vec<_>>());
        // A new day starts a file without a number.
        *d.lock().unwrap() = "20260103".into();
        let (buf, ends) = lines(10, 3, 30);
        r.write_lines(&buf, &ends).unwrap();
        assert_eq!(r.active().file_name().unwrap(), "skiff-20260103.ndjson");
        assert_eq!(
            names(dir.path()),
            [
                "skiff-20260102-2.ndjson",
                "skiff-20260102-3.ndjson",
                "skiff-20260103.ndjson",
                "unrelated.ndjson"
            ]
        );
    }

    #[test]
    fn startup_rotates_or_appends() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(Mutex::new("20260102".to_string()));
        let (buf, ends) = lines(0, 1, 10);
        let mut r = Rotator::open(cfg(dir.path(), 1000, 7, true), clock(&d), true).unwrap();
        r.write_lines(&buf, &ends).unwrap();
        drop(r);
        // rotate_on_startup: a new file next to the existing one.
        let mut r = Rotator::open(cfg(dir.path(), 1000, 7, true), clock(&d), true).unwrap();
        r.write_lines(&buf, &ends).unwrap();
        assert_eq!(
            names(dir.path()),
            ["skiff-20260102-1.ndjson", "skiff-20260102.ndjson"]
        );
        drop(r);
        // rotate_on_startup: false appends to the newest file, and counts its size.
        let mut r = Rotator::open(cfg(dir.path(), 25, 7, false), clock(&d), true).unwrap();
        r.write_lines(&buf, &ends).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("skiff-20260102-1.ndjson"))
                .unwrap()
                .len(),
            20
        );
        r.write_lines(&buf, &ends).unwrap();
        assert_eq!(
            names(dir.path()),
            [
                "skiff-20260102-1.ndjson",
                "skiff-20260102-2.ndjson",
                "skiff-20260102.ndjson"
            ]
        );
    }

    #[test]
    fn permissions_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(Mutex::new("20260102".to_string()));
        for mode in [0o600, 0o644, 0o640] {
            let mut c = cfg(dir.path(), 1000, 7, true);
            c.permissions = mode;
            let mut r = Rotator::open(c, clock(&d), true).unwrap();
            let (buf, ends) = lines(0, 1, 10);
            r.write_lines(&buf, &ends).unwrap();
            let m = std::fs::metadata(r.active()).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, mode, "{}", r.active().display());
        }
    }
}
