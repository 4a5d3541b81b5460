//! Inputs added and removed while a topology runs (what reloads use), with the in-memory
//! components of tests/common.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Fixture, quick, until};
use skiff_topology::{AddError, Drain, Ended, State};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_added_and_removed_while_the_rest_runs() {
    let fx = Fixture::new();
    let t = fx.topology(fx.numbers("n", 100, false, 0), false, quick(5));
    let health = t.health();
    let mut running = t.start().await;
    let got = fx.got.clone();
    until("n's 100 events", || got.lock().unwrap().len() == 100).await;

    running.add_input(fx.numbers("m", 50, false, 0)).unwrap();
    until("m's 50 events too", || got.lock().unwrap().len() == 150).await;
    assert_eq!(running.input_ids(), vec!["m".to_string(), "n".to_string()]);
    assert_eq!(health.get("input/m").unwrap().state, State::Running);
    // An id that runs cannot be added twice.
    assert_eq!(
        running.add_input(fx.numbers("m", 1, false, 0)).unwrap_err(),
        AddError::DuplicateId("m".into())
    );

    // Removing waits until the input has stopped (it notes "input stopped" on its way out).
    assert!(running.remove_input("n").await);
    assert_eq!(
        fx.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == "input stopped")
            .count(),
        1
    );
    assert!(health.get("input/n").is_none());
    assert!(!running.remove_input("n").await);
    assert_eq!(running.input_ids(), vec!["m".to_string()]);
    // The same id can be started again once removed.
    running.add_input(fx.numbers("n", 10, false, 0)).unwrap();
    until("the new n's 10 events", || got.lock().unwrap().len() == 160).await;

    // With keep_alive, no input running is not the end.
    running.keep_alive(true);
    assert!(running.remove_input("n").await);
    assert!(running.remove_input("m").await);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), running.wait())
            .await
            .is_err(),
        "wait() returned with keep_alive and no inputs"
    );
    running.keep_alive(false);
    assert_eq!(running.wait().await, Ended::InputsEnded);
    let report = running
        .stop(Drain::For(Duration::from_secs(5)), std::future::pending())
        .await;
    assert_eq!(report.left, 0);
    assert_eq!(got.lock().unwrap().len(), 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_input_that_cannot_be_built_is_refused_not_fatal() {
    let fx = Fixture::new();
    let t = fx.topology(fx.numbers("n", 5, false, 0), false, quick(5));
    let mut running = t.start().await;
    let broken = skiff_topology::InputSpec::new(
        "broken",
        std::sync::Arc::new(|| {
            Err(skiff_pipeline::Failure::new(
                skiff_pipeline::FailureKind::Other,
                "no such thing",
            ))
        }),
    );
    let e = running.add_input(broken).unwrap_err();
    assert!(
        matches!(&e, AddError::Build(m) if m.contains("no such thing")),
        "{e}"
    );
    // Nothing fatal was reported: the topology runs on.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), running.wait())
            .await
            .is_err()
    );
    assert_eq!(running.input_ids(), vec!["n".to_string()]);
    running
        .stop(Drain::For(Duration::from_secs(5)), std::future::pending())
        .await;
}
