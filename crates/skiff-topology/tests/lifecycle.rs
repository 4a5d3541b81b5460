//! The topology's start/stop order and its supervision of inputs, with in-memory components
//! (tests/common).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Fixture, position, quick, until};
use skiff_metrics::names;
use skiff_topology::{Drain, Ended, State};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_order_is_inputs_then_queue_then_outputs() {
    let fx = Fixture::new();
    let t = fx.topology(fx.numbers("n", 100, false, 0), false, quick(5));
    let running = t.start().await;
    let got = fx.got.clone();
    until("100 events delivered", || got.lock().unwrap().len() == 100).await;
    let report = running
        .stop(Drain::For(Duration::from_secs(5)), std::future::pending())
        .await;
    assert_eq!(report.left, 0);
    let input = position(&fx.log, "input stopped");
    let queue = position(&fx.log, "queue closed");
    let output = position(&fx.log, "output closed");
    assert!(
        input < queue && queue < output,
        "order: {:?}",
        fx.log.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_ends_is_drained_fully_and_nothing_is_left() {
    let fx = Fixture::new();
    let t = fx.topology(fx.numbers("n", 500, true, 0), false, quick(5));
    let health = t.health();
    let mut running = t.start().await;
    assert_eq!(running.wait().await, Ended::InputsEnded);
    let report = running.stop(Drain::Fully, std::future::pending()).await;
    assert_eq!((report.left, report.lost()), (0, 0));
    assert_eq!(fx.got.lock().unwrap().len(), 500);
    assert_eq!(health.get("input/n").unwrap().state, State::Ended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_input_is_restarted_and_counted_by_kind() {
    let fx = Fixture::new();
    let t = fx.topology(fx.numbers("n", 50, true, 2), false, quick(5));
    let health = t.health();
    let mut running = t.start().await;
    assert_eq!(running.wait().await, Ended::InputsEnded);
    running.stop(Drain::Fully, std::future::pending()).await;
    assert_eq!(
        fx.got.lock().unwrap().len(),
        50,
        "the restarted input published everything"
    );
    let h = health.get("input/n").unwrap();
    assert_eq!(h.restarts, 2);
    assert!(h.last_error.unwrap().starts_with("connect: "));
    let m = &fx.ctx.metrics;
    assert_eq!(
        m.counter_with(&names::INPUT_RESTARTS, &[("input", "n")])
            .get(),
        2
    );
    assert_eq!(
        m.counter_with(
            &names::INPUT_FAILURES,
            &[("input", "n"), ("kind", "connect")]
        )
        .get(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_keeps_failing_is_fatal_with_the_reason() {
    let fx = Fixture::new();
    let t = fx.topology(fx.numbers("bad", 1, true, 100), false, quick(2));
    let health = t.health();
    let mut running = t.start().await;
    let Ended::Fatal(reason) = running.wait().await else {
        panic!("expected a fatal end");
    };
    assert!(reason.contains("input bad failed 3 times"), "{reason}");
    assert!(reason.contains("cannot reach the source"), "{reason}");
    assert_eq!(health.get("input/bad").unwrap().state, State::Failed);
    assert!(!health.ok());
    assert_eq!(health.json()["ok"], false);
    running
        .stop(Drain::For(Duration::ZERO), std::future::pending())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_drain_reports_the_events_left_as_lost() {
    let fx = Fixture::new();
    let t = fx.topology(fx.numbers("n", 30, true, 0), true, quick(5));
    let mut running = t.start().await;
    assert_eq!(running.wait().await, Ended::InputsEnded);
    let report = running
        .stop(Drain::Fully, tokio::time::sleep(Duration::from_millis(200)))
        .await;
    assert_eq!(report.left, 30);
    assert!(!report.resent, "an input that cannot replay");
    assert_eq!(report.lost(), 30);
}
