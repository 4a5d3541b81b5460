//! Change notifications (inotify on Linux, through the `notify` crate) for immediate pick-up.
//!
//! The watcher only speeds things up: the periodic scan finds everything anyway. So a lost or
//! overflowing notification costs latency, never data. Notifications go through a bounded
//! channel; when it is full, a flag asks the prospector for a full scan instead.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// What a notification means to the prospector.
#[derive(Debug)]
pub(crate) enum Change {
    /// Data was written to this path.
    Written(PathBuf),
    /// Something was created, removed or renamed: scan.
    Layout,
}

/// The directories watched for a set of glob patterns.
pub(crate) struct Watch {
    watcher: Option<notify::RecommendedWatcher>,
    /// `(directory, recursive, watching now)`.
    dirs: Vec<(PathBuf, bool, bool)>,
    /// Set when notifications were lost.
    pub overflow: Arc<AtomicBool>,
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// The literal directory a pattern starts with, and whether anything below it can match.
pub(crate) fn base_dir(pattern: &str) -> (PathBuf, bool) {
    let p = Path::new(pattern);
    let mut base = PathBuf::new();
    let comps: Vec<Component<'_>> = p.components().collect();
    let mut i = 0;
    while i < comps.len() {
        let c = comps[i].as_os_str().to_string_lossy();
        if has_meta(&c) {
            break;
        }
        base.push(comps[i].as_os_str());
        i += 1;
    }
    if i == comps.len() {
        // A literal path: watch its directory.
        let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        return (dir, false);
    }
    let rest = comps.len() - i;
    let recursive = rest > 1 || pattern.contains("**");
    if base.as_os_str().is_empty() {
        base.push(".");
    }
    (base, recursive)
}

impl Watch {
    /// Starts watching the directories of `patterns`; changes arrive on the returned channel.
    pub(crate) fn start(patterns: &[String]) -> (Watch, mpsc::Receiver<Change>) {
        let (tx, rx) = mpsc::channel(4096);
        let overflow = Arc::new(AtomicBool::new(false));
        let flag = overflow.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let changes: Vec<Change> = match res {
                Ok(ev) => match ev.kind {
                    EventKind::Modify(notify::event::ModifyKind::Data(_))
                    | EventKind::Modify(notify::event::ModifyKind::Any) => {
                        ev.paths.into_iter().map(Change::Written).collect()
                    }
                    EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                    | EventKind::Access(_) => Vec::new(),
                    _ => vec![Change::Layout],
                },
                Err(_) => vec![Change::Layout],
            };
            for c in changes {
                if tx.try_send(c).is_err() {
                    flag.store(true, Ordering::Release);
                }
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start file change notifications; relying on the periodic scan (prospector.scanner.check_interval)");
                None
            }
        };
        let mut dirs: Vec<(PathBuf, bool, bool)> = Vec::new();
        for p in patterns {
            let (d, rec) = base_dir(p);
            match dirs.iter_mut().find(|(x, _, _)| *x == d) {
                Some(e) => e.1 |= rec,
                None => dirs.push((d, rec, false)),
            }
        }
        let mut w = Watch {
            watcher,
            dirs,
            overflow,
        };
        w.refresh();
        (w, rx)
    }

    /// Starts watching directories that did not exist before (called at every scan).
    /// True when every directory of the patterns is watched: a write anywhere is notified.
    pub(crate) fn complete(&self) -> bool {
        self.watcher.is_some() && self.dirs.iter().all(|(_, _, on)| *on)
    }

    pub(crate) fn refresh(&mut self) {
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        for (dir, rec, on) in &mut self.dirs {
            if *on || !dir.is_dir() {
                continue;
            }
            let mode = if *rec {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match w.watch(dir, mode) {
                Ok(()) => *on = true,
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory; the periodic scan covers it");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_dirs() {
        assert_eq!(
            base_dir("/var/log/*.log"),
            (PathBuf::from("/var/log"), false)
        );
        assert_eq!(
            base_dir("/var/log/**/*.log"),
            (PathBuf::from("/var/log"), true)
        );
        assert_eq!(base_dir("/var/*/x.log"), (PathBuf::from("/var"), true));
        assert_eq!(
            base_dir("/var/log/syslog"),
            (PathBuf::from("/var/log"), false)
        );
    }
}
