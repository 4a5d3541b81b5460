//! Naming the component a task runs, so a panic anywhere is logged with who panicked.
//!
//! Every long-lived task (an input, a file reader, an output worker) runs inside [`named`]. The
//! process-wide hook from [`install_panic_hook`] logs each panic through `tracing` with that
//! name, the panic's message and its location, instead of a bare line on stderr that nothing
//! collects. Whoever spawned the task sees the panic as a failed `JoinHandle` and decides what
//! to do (restart the component, reopen the file, or stop skiff with the reason): this module
//! only makes the panic visible and attributable.

use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static COMPONENT: Arc<str>;
}

/// Runs `fut` as the component `name` (`input/app-logs`, `output/redis(127.0.0.1:6379)`,
/// `file/app-logs:/var/log/a.log`): a panic inside it is logged with that name.
///
/// A plain function returning the scope, not an `async fn`: an `async fn` that awaits a future
/// it was given keeps room for it twice (rust-lang/rust#62958), and every open file reader, idle
/// or not, runs inside this.
pub fn named<F: Future>(
    name: impl Into<Arc<str>>,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<Arc<str>, F> {
    COMPONENT.scope(name.into(), fut)
}

/// The component the current task runs, if it runs inside [`named`].
pub fn current() -> Option<Arc<str>> {
    COMPONENT.try_with(Arc::clone).ok()
}

/// Installs the panic hook that logs every panic through `tracing` (`component`, `location`,
/// the message), then runs the previously installed hook only when `keep_default` is set
/// (tests keep it, so libtest still shows the panic). Call once at start-up.
pub fn install_panic_hook(keep_default: bool) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let component = current();
        let component = component.as_deref().unwrap_or("-");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = payload_message(info.payload());
        tracing::error!(component, location = %location, "panic: {message}");
        if keep_default {
            previous(info);
        }
    }));
}

/// The message of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

/// What a failed task's `JoinError` says: the panic's message, or "cancelled".
pub fn join_error_message(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        payload_message(&*e.into_panic())
    } else {
        "cancelled".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_knows_its_name_and_a_panic_says_what_it_was() {
        assert!(current().is_none());
        let name = named("output/test", async { current() }).await;
        assert_eq!(name.as_deref(), Some("output/test"));
        let e = tokio::spawn(named("input/x", async { panic!("boom") }))
            .await
            .err();
        let msg = e.map(join_error_message);
        assert_eq!(msg.as_deref(), Some("boom"));
    }

    /// Every file reader runs inside `named`: the name may cost a few words, not a second copy
    /// of the reader's state (as an `async fn` awaiting its argument did).
    #[test]
    fn naming_a_task_does_not_copy_its_future() {
        let big = [7u8; 16 << 10];
        let fut = async move {
            tokio::task::yield_now().await;
            big.len()
        };
        let alone = std::mem::size_of_val(&fut);
        let wrapped = named("file/x", fut);
        assert!(
            std::mem::size_of_val(&wrapped) <= alone + 64,
            "{} bytes named vs {alone} alone",
            std::mem::size_of_val(&wrapped)
        );
    }
}
