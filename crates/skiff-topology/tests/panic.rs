//! A panicking input is restarted (its own test binary: the fault point is process-wide, and
//! would fire in whichever test reached it first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Fixture, quick};
use skiff_pipeline::fault;
use skiff_topology::{Drain, Ended};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_input_is_restarted() {
    let fx = Fixture::new();
    let t = fx.topology(fx.numbers("p", 20, true, 0), false, quick(5));
    let health = t.health();
    fault::arm(skiff_topology::supervisor::PANIC_POINT, 1);
    let mut running = t.start().await;
    assert_eq!(running.wait().await, Ended::InputsEnded);
    running.stop(Drain::Fully, std::future::pending()).await;
    assert_eq!(fx.got.lock().unwrap().len(), 20);
    let h = health.get("input/p").unwrap();
    assert_eq!(h.restarts, 1);
    assert!(
        h.last_error.unwrap().contains("injected fault"),
        "panic message kept"
    );
}
