//! Warnings, and the problems found beyond the first one, while a configuration is read.
//!
//! Filebeat ignores keys it does not know; skiff used to refuse them. Refusing keeps typos from
//! going unnoticed, but it also refuses real `filebeat.yml` files that carry keys of other Beats
//! versions. The middle ground: an unknown key is a **warning** (with its file:line and a
//! suggestion), listed by `skiff test config`, logged at start and counted; `--strict` makes it
//! an error again.
//!
//! serde reports one error and stops, and every component deserializes its own settings, so the
//! warnings and the problems after the first one of a struct cannot travel back through the
//! return value of [`Node::deserialize`](crate::Node::deserialize) without changing every
//! component's signature. They go to a collector instead: [`collect`] opens one on this thread
//! for the duration of a closure (reading a configuration is synchronous), and whatever the
//! deserializer finds beyond its returned error lands there.
//!
//! Outside [`collect`], the process-wide [`set_tolerant`] decides: the library's default is
//! strict (an unknown key is an error, as a library user expects); the binary switches to
//! Filebeat's tolerance at start. Warnings found outside a collector (an input built again at a
//! restart) were reported when the configuration was first read, and are logged at debug level.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::ConfigError;

/// Warnings and further errors found while a closure run by [`collect`] read configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diagnostics {
    /// Keys ignored (Filebeat ignores them too), and other things worth a loud warning.
    pub warnings: Vec<ConfigError>,
    /// Problems found after the first one of a struct (the first is returned as the error).
    pub errors: Vec<ConfigError>,
}

struct Sink {
    strict: bool,
    diag: Diagnostics,
}

thread_local! {
    static SINKS: RefCell<Vec<Sink>> = const { RefCell::new(Vec::new()) };
}

static TOLERANT: AtomicBool = AtomicBool::new(false);

/// Makes unknown keys warnings (`true`, Filebeat's behaviour) or errors (`false`, the default)
/// outside [`collect`].
pub fn set_tolerant(tolerant: bool) {
    TOLERANT.store(tolerant, Ordering::Relaxed);
}

/// Runs `f`, collecting every warning and extra error the deserializer finds on this thread
/// meanwhile. With `strict`, unknown keys are errors. Collectors nest; the innermost one
/// collects.
pub fn collect<R>(strict: bool, f: impl FnOnce() -> R) -> (R, Diagnostics) {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            SINKS.with(|s| s.borrow_mut().pop());
        }
    }
    SINKS.with(|s| {
        s.borrow_mut().push(Sink {
            strict,
            diag: Diagnostics::default(),
        })
    });
    let pop = Pop;
    let r = f();
    let diag = SINKS.with(|s| {
        s.borrow_mut()
            .last_mut()
            .map(|sink| std::mem::take(&mut sink.diag))
            .unwrap_or_default()
    });
    drop(pop);
    (r, diag)
}

/// Whether unknown keys are errors here and now.
pub fn is_strict() -> bool {
    SINKS
        .with(|s| s.borrow().last().map(|sink| sink.strict))
        .unwrap_or_else(|| !TOLERANT.load(Ordering::Relaxed))
}

/// Reports a key that is ignored. Returns it back as an error when unknown keys are errors
/// ([`is_strict`]); the caller then reports it as one.
pub fn tolerate(warning: ConfigError) -> Result<(), ConfigError> {
    if is_strict() {
        return Err(warning);
    }
    warn(warning);
    Ok(())
}

/// Reports a warning (to the collector, or to the log outside one).
pub fn warn(warning: ConfigError) {
    let rest = SINKS.with(|s| match s.borrow_mut().last_mut() {
        Some(sink) => {
            if !sink.diag.warnings.contains(&warning) {
                sink.diag.warnings.push(warning);
            }
            None
        }
        None => Some(warning),
    });
    if let Some(w) = rest {
        tracing::debug!("configuration warning: {w}");
    }
}

/// Reports an error beyond the one a call returns (dropped outside a collector: the caller
/// reports its returned error, and the rest are found once it is fixed).
pub(crate) fn error(e: ConfigError) {
    SINKS.with(|s| {
        if let Some(sink) = s.borrow_mut().last_mut()
            && !sink.diag.errors.contains(&e)
        {
            sink.diag.errors.push(e);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Mark;

    #[test]
    fn collectors_nest_and_strictness_follows_the_innermost() {
        let w = |m: &str| ConfigError::new("a", Mark::none(), m);
        let ((strict_inside, inner), outer) = collect(false, || {
            warn(w("outer"));
            let r = collect(true, || {
                assert!(tolerate(w("x")).is_err());
                warn(w("inner"));
                is_strict()
            });
            tolerate(w("tolerated")).unwrap();
            r
        });
        assert!(strict_inside);
        assert_eq!(inner.warnings, vec![w("inner")]);
        assert_eq!(outer.warnings, vec![w("outer"), w("tolerated")]);
    }
}
