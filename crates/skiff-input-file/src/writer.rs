//! The registry writer: a dedicated thread per input that does the registry's writes and
//! fsyncs, so a slow or stuck disk never stalls the Tokio workers that run the readers, the
//! queue and the outputs.
//!
//! The prospector stays the only one that decides what is written: it builds each commit's
//! records (only acknowledged offsets) and sends them as one job. At most one job is in flight
//! (the prospector waits for its [`Done`] before sending the next), so writes land in the order
//! they were decided, the records of a slow write's interval simply accumulate into the next
//! one (still one fsync), and memory stays bounded by the number of known files. At shutdown
//! the prospector sends the last commit and waits for it, then joins the thread.

use std::path::PathBuf;
use std::sync::mpsc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::registry::{Record, Store};

/// Fault point: the writer blocks before each write while it is armed (see
/// `skiff_pipeline::fault::stall_point`).
pub(crate) const STALL_POINT: &str = "file.registry.stall";

/// One commit.
pub(crate) enum Job {
    /// Append these records and fsync; `live` is the number of known files (a compaction is
    /// wanted instead when the file would hold too many stale records).
    Append { records: Vec<Record>, live: usize },
    /// Rewrite the file with only these records.
    Compact(Vec<Record>),
}

/// How a job went.
pub(crate) enum Done {
    /// Written and fsynced.
    Written,
    /// Nothing written: the file is due for a rewrite; send [`Job::Compact`] (the appended
    /// records are part of the live ones).
    CompactionWanted,
    /// The write failed.
    Failed(std::io::Error),
}

/// The prospector's end of the writer thread.
pub(crate) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    done: UnboundedReceiver<Done>,
    thread: Option<std::thread::JoinHandle<()>>,
    in_flight: bool,
    path: PathBuf,
}

impl Writer {
    /// Starts the thread that owns `store`.
    pub(crate) fn spawn(store: Store, input: &str) -> std::io::Result<Writer> {
        let path = store.path().to_path_buf();
        let (jobs, rx) = mpsc::channel::<Job>();
        let (tx, done) = unbounded_channel();
        let thread = std::thread::Builder::new()
            .name(format!("registry-{input}").chars().take(15).collect())
            .spawn(move || write_loop(store, rx, tx))?;
        Ok(Writer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: false,
            path,
        })
    }

    /// The registry file.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Whether a job is being written.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight
    }

    /// Sends a job; the caller must not send another before [`Writer::done`] returned. False
    /// when the thread is gone (it only ends when told to, or by a panic): offsets can no
    /// longer be saved.
    pub(crate) fn send(&mut self, job: Job) -> bool {
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        self.in_flight = sent;
        sent
    }

    /// Waits for the job in flight to end. Pending forever when none is.
    pub(crate) async fn done(&mut self) -> Done {
        if !self.in_flight {
            return std::future::pending().await;
        }
        let d = self.done.recv().await;
        self.in_flight = false;
        d.unwrap_or_else(|| Done::Failed(std::io::Error::other("the registry writer thread ended")))
    }

    /// Stops the thread after the job in flight (the caller waited for it) and joins it.
    pub(crate) async fn close(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn write_loop(mut store: Store, jobs: mpsc::Receiver<Job>, done: UnboundedSender<Done>) {
    while let Ok(job) = jobs.recv() {
        skiff_pipeline::fault::stall_point(STALL_POINT);
        let result = match job {
            Job::Append { records, live } => {
                if store.wants_compaction(records.len(), live) {
                    Ok(false)
                } else {
                    store.append(&records).map(|()| true)
                }
            }
            Job::Compact(live) => store.compact(live.iter()).map(|()| true),
        };
        let d = match result {
            Ok(true) => Done::Written,
            Ok(false) => Done::CompactionWanted,
            Err(e) => Done::Failed(e),
        };
        if done.send(d).is_err() {
            return;
        }
    }
}
