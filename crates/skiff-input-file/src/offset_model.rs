//! Model test of the saved offsets (issue 9, part 5), like the disk queue's model test.
//!
//! Random sequences of: publish lines, acknowledge some in any order, lose some (a token dropped
//! unresolved), truncate a file, rotate it (renamed, a new file at its path), commit, crash
//! (everything dropped without stopping) and restart from the registry file. It drives the
//! real pieces: [`FileShared`]'s acknowledgement stream and generations, the ack path's push
//! into the [`CommitSet`], the prospector's commit ([`collect_moved`]), the registry writer
//! thread and [`Store`]; only the file contents and the reader are modelled (lines as byte
//! ranges; a reader publishes one token per line at the line's end, and after a restart
//! resumes at the saved offset unless the file's head changed, as `harvester::session` does).
//!
//! Checked after every step, against the registry file on disk: where a restart would resume
//! (the saved offset, or 0 if the content was replaced) is a line boundary and never past a
//! line of the current content that is not acknowledged, so a restart sends every
//! unacknowledged line again. After every commit: the saved offset is exactly the end of the
//! acknowledged prefix (the commit set missed no move).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use skiff_event::{AckToken, ack_all};

use crate::identity::{FileKey, Fingerprint};
use crate::prospector::{Entry, collect_moved, live_records};
use crate::registry::{self, Record, Store};
use crate::state::{CommitSet, FileShared};
use crate::writer::{Done, Job, Writer};

const INPUT: &str = "model";

#[derive(Clone, Debug)]
enum Op {
    /// Append lines of these lengths to a file; its reader publishes everything not yet
    /// published.
    Publish(usize, Vec<u64>),
    /// Acknowledge these events in flight (indices modulo the number in flight), in this order.
    Ack(Vec<usize>),
    /// An event in flight is lost (its token dropped unresolved).
    Lose(usize),
    Truncate(usize),
    Rotate(usize),
    Commit,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8usize, prop::collection::vec(1..40u64, 1..6)).prop_map(|(f, l)| Op::Publish(f, l)),
        4 => prop::collection::vec(0..64usize, 1..8).prop_map(Op::Ack),
        1 => (0..64usize).prop_map(Op::Lose),
        1 => (0..8usize).prop_map(Op::Truncate),
        1 => (0..8usize).prop_map(Op::Rotate),
        3 => Just(Op::Commit),
        1 => Just(Op::Crash),
    ]
}

/// One file as the model knows it.
struct MFile {
    key: FileKey,
    /// Content generation; also the fingerprint's hash, so a restart can tell a replaced head.
    generation: u64,
    /// Lines of the current content: `(start, end)`.
    lines: Vec<(u64, u64)>,
    /// Whether each line of the current content was delivered.
    acked: Vec<bool>,
    /// Lines published by the reader of this process.
    published: usize,
}

impl MFile {
    fn end(&self) -> u64 {
        self.lines.last().map_or(0, |l| l.1)
    }

    /// The end of the acknowledged prefix of the current content.
    fn prefix_end(&self) -> u64 {
        let mut end = 0;
        for (i, l) in self.lines.iter().enumerate() {
            if !self.acked[i] {
                break;
            }
            end = l.1;
        }
        end
    }
}

fn fingerprint(generation: u64) -> Fingerprint {
    Fingerprint {
        len: 1,
        hash: generation,
    }
}

struct InFlight {
    key: FileKey,
    generation: u64,
    line: usize,
    token: AckToken,
}

/// The running "process": the real commit machinery.
struct Process {
    commits: Arc<CommitSet>,
    entries: HashMap<FileKey, Entry>,
    writer: Writer,
    in_flight: Vec<InFlight>,
}

fn start(data: &Path, files: &mut [MFile]) -> Process {
    let (store, loaded) = Store::open(data, INPUT).unwrap();
    let commits = Arc::new(CommitSet::default());
    let mut entries = HashMap::new();
    for f in files.iter_mut() {
        let entry = match loaded.entries.get(&f.key) {
            Some(r) => Entry::loaded(f.key, r, &commits),
            None => Entry::found(
                FileShared::new(
                    f.key,
                    PathBuf::from(format!("/logs/{}", f.key.ino)),
                    fingerprint(f.generation),
                    f.end(),
                    0,
                    commits.clone(),
                ),
                0,
            ),
        };
        // The reader's check at open: a saved offset past the end or a different head means
        // the content was replaced: read from 0 in a new generation.
        let saved = entry
            .file
            .read_offset
            .load(std::sync::atomic::Ordering::Acquire);
        let resume = resume_offset(loaded.entries.get(&f.key), f);
        if resume != saved {
            entry.file.new_generation(resume);
            entry
                .file
                .read_offset
                .store(resume, std::sync::atomic::Ordering::Release);
        }
        entry.file.set_fingerprint(fingerprint(f.generation));
        // Lines before the resume offset are committed; the reader sends the rest again.
        f.published = f.lines.iter().take_while(|l| l.1 <= resume).count();
        for (i, a) in f.acked.iter_mut().enumerate() {
            *a = i < f.published;
        }
        entries.insert(f.key, entry);
    }
    Process {
        commits,
        entries,
        writer: Writer::spawn(store, INPUT).unwrap(),
        in_flight: Vec::new(),
    }
}

/// Where a reader started on `f` with the registry record `r` resumes.
fn resume_offset(r: Option<&Record>, f: &MFile) -> u64 {
    match r {
        Some(r) if r.fingerprint() == fingerprint(f.generation) && r.offset <= f.end() => r.offset,
        _ => 0,
    }
}

fn commit(p: &mut Process, rt: &tokio::runtime::Runtime) {
    let mut records = Vec::new();
    collect_moved(INPUT, &p.commits, &mut p.entries, &mut records);
    let live = p.entries.len();
    rt.block_on(async {
        assert!(p.writer.send(Job::Append { records, live }));
        loop {
            match p.writer.done().await {
                Done::Written => break,
                Done::CompactionWanted => {
                    assert!(p.writer.send(Job::Compact(live_records(INPUT, &p.entries))))
                }
                Done::Failed(e) => panic!("registry write failed: {e}"),
            }
        }
    });
}

/// The invariant: a restart resumes at a line boundary, at or before the first line of the
/// current content not delivered.
fn check_saved(data: &Path, files: &[MFile], after_commit: bool) -> Result<(), TestCaseError> {
    let loaded = registry::load(&registry::store_path(data, INPUT)).unwrap();
    for f in files {
        let r = loaded.entries.get(&f.key);
        let resume = resume_offset(r, f);
        prop_assert!(
            resume == 0 || f.lines.iter().any(|l| l.1 == resume),
            "file {}: resume offset {resume} is not a line boundary",
            f.key.ino
        );
        if let Some(i) = f.acked.iter().position(|a| !a) {
            prop_assert!(
                resume <= f.lines[i].0,
                "file {}: saved offset {resume} passes the unacknowledged line {:?}",
                f.key.ino,
                f.lines[i]
            );
        }
        if after_commit {
            let saved = r
                .filter(|r| r.fingerprint() == fingerprint(f.generation))
                .map_or(0, |r| r.offset);
            prop_assert_eq!(
                saved,
                f.prefix_end(),
                "file {}: the commit did not save the acknowledged prefix",
                f.key.ino
            );
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut next_ino = 1;
    let mut next_gen = 1;
    let mut files = vec![MFile {
        key: FileKey { dev: 1, ino: 1 },
        generation: 0,
        lines: Vec::new(),
        acked: Vec::new(),
        published: 0,
    }];
    let mut p = start(data, &mut files);
    for op in ops {
        match op {
            Op::Publish(fi, lens) => {
                let n = files.len();
                let f = &mut files[fi % n];
                for len in lens {
                    let s = f.end();
                    f.lines.push((s, s + len));
                    f.acked.push(false);
                }
                let stream = p.entries[&f.key].file.stream();
                while f.published < f.lines.len() {
                    let line = f.published;
                    p.in_flight.push(InFlight {
                        key: f.key,
                        generation: f.generation,
                        line,
                        token: stream.token(f.lines[line].1),
                    });
                    f.published += 1;
                }
            }
            Op::Ack(picks) => {
                let mut tokens = Vec::new();
                for pick in picks {
                    if p.in_flight.is_empty() {
                        break;
                    }
                    let ev = p.in_flight.swap_remove(pick % p.in_flight.len());
                    if let Some(f) = files
                        .iter_mut()
                        .find(|f| f.key == ev.key && f.generation == ev.generation)
                    {
                        f.acked[ev.line] = true;
                    }
                    tokens.push(ev.token);
                }
                ack_all(tokens);
            }
            Op::Lose(pick) => {
                if !p.in_flight.is_empty() {
                    let len = p.in_flight.len();
                    drop(p.in_flight.swap_remove(pick % len));
                }
            }
            Op::Truncate(fi) => {
                let n = files.len();
                let f = &mut files[fi % n];
                f.generation = next_gen;
                next_gen += 1;
                f.lines.clear();
                f.acked.clear();
                f.published = 0;
                // What the reader does when it sees the file shorter or its head changed.
                let file = &p.entries[&f.key].file;
                file.set_fingerprint(fingerprint(f.generation));
                file.new_generation(0);
                file.read_offset
                    .store(0, std::sync::atomic::Ordering::Release);
            }
            Op::Rotate(fi) => {
                if files.len() < 6 {
                    let f = &files[fi % files.len()];
                    let old = p.entries[&f.key].file.path();
                    p.entries[&f.key].file.set_path(old.with_extension("1"));
                    next_ino += 1;
                    let key = FileKey {
                        dev: 1,
                        ino: next_ino,
                    };
                    files.push(MFile {
                        key,
                        generation: next_gen,
                        lines: Vec::new(),
                        acked: Vec::new(),
                        published: 0,
                    });
                    let file =
                        FileShared::new(key, old, fingerprint(next_gen), 0, 0, p.commits.clone());
                    next_gen += 1;
                    p.entries.insert(key, Entry::found(file, 0));
                }
            }
            Op::Commit => {
                commit(&mut p, &rt);
                check_saved(data, &files, true)?;
            }
            Op::Crash => {
                // Everything dropped without a last commit; tokens in flight are lost with it.
                drop(p);
                p = start(data, &mut files);
            }
        }
        check_saved(data, &files, false)?;
    }
    // A clean stop at the end: the last commit saves exactly the acknowledged prefixes.
    commit(&mut p, &rt);
    check_saved(data, &files, true)?;
    rt.block_on(p.writer.close());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn saved_offsets_never_pass_an_unacknowledged_line(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
