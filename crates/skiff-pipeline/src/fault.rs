//! Fault points: named places where a test can make skiff fail on purpose (a panic in a file
//! reader, in an output's send), to show that supervision restarts the component and loses
//! nothing.
//!
//! A point fires only when armed, either in-process with [`arm`] or, for tests that run the
//! binary, by the environment variable `SKIFF_TEST_FAULTS` read once at the first check:
//! `SKIFF_TEST_FAULTS="output.send.panic=2,file.reader.panic=1"` fires `output.send.panic` the
//! first two times it is reached and `file.reader.panic` once. An unarmed point costs one
//! relaxed atomic load, so points may sit on hot paths.
//!
//! Points in use (add yours here):
//! * `output.send.panic`: the output worker panics inside a batch's send.
//! * `output.settle.panic`: the output worker panics while it settles a batch's outcome
//!   (acks, retries, dead letters), after the first event.
//! * `file.reader.panic`: a file reader panics after publishing a batch.
//! * `input.run.panic`: an input's task panics as it starts, before its `run` reads anything
//!   (the topology's supervisor, `skiff-topology`); each restart reaches it again.
//! * `file.registry.stall` ([`stall_point`]): the file input's registry writer blocks before
//!   each write while the point is armed (a stuck disk).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// The variable tests set to arm points in a child process.
pub const ENV: &str = "SKIFF_TEST_FAULTS";

static ARMED: AtomicBool = AtomicBool::new(false);

fn table() -> &'static Mutex<HashMap<String, u64>> {
    static TABLE: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = HashMap::new();
        if let Ok(spec) = std::env::var(ENV) {
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, times) = match item.split_once('=') {
                    Some((n, t)) => (n.trim(), t.trim().parse().unwrap_or(1)),
                    None => (item, 1),
                };
                m.insert(name.to_owned(), times);
            }
        }
        if !m.is_empty() {
            ARMED.store(true, Ordering::Relaxed);
        }
        Mutex::new(m)
    })
}

/// Arms `point` to fire the next `times` times it is reached (in this process).
pub fn arm(point: &str, times: u64) {
    let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
    t.insert(point.to_owned(), times);
    ARMED.store(true, Ordering::Relaxed);
}

/// Whether `point` fires now (and counts it down). False unless a test armed it.
pub fn fires(point: &str) -> bool {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = table();
    });
    if !ARMED.load(Ordering::Relaxed) {
        return false;
    }
    let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
    match t.get_mut(point) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

/// Blocks the calling thread while `point` is armed: `arm(point, 1)` holds whoever reaches it,
/// `arm(point, 0)` lets it go. Not counted down. For dedicated or blocking threads only: it
/// sleeps (10ms steps) the thread it holds, and takes a lock even when unarmed (keep it off
/// hot paths).
pub fn stall_point(point: &str) {
    while table()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(point)
        .is_some_and(|n| *n > 0)
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Panics with a message naming `point` if it fires: `fault::panic_point("output.send.panic")`.
pub fn panic_point(point: &str) {
    if fires(point) {
        panic!("injected fault: {point}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_point_holds_until_disarmed() {
        stall_point("test.stall.a");
        arm("test.stall.a", 1);
        let h = std::thread::spawn(|| stall_point("test.stall.a"));
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(
            !h.is_finished(),
            "an armed stall point let the thread through"
        );
        arm("test.stall.a", 0);
        h.join().unwrap();
    }

    #[test]
    fn an_armed_point_fires_as_often_as_asked_then_never() {
        assert!(!fires("test.point.a"));
        arm("test.point.a", 2);
        assert!(fires("test.point.a"));
        assert!(fires("test.point.a"));
        assert!(!fires("test.point.a"));
        assert!(!fires("test.point.b"));
    }
}
