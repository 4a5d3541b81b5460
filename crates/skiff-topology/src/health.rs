//! Health: what every component of a running topology is doing, for `GET /health`, the final
//! log line and tests.
//!
//! A component is keyed `input/<id>` or `output/<name>`. Its state changes only where the
//! supervisor sees it change (started, failed, restarted, gave up, stopped), so the document is
//! the supervisor's own view, not a guess from metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// What a component is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Built, not started yet.
    Starting,
    /// Running.
    Running,
    /// Failed; waiting for its backoff before it is built and started again.
    Restarting,
    /// Could not be restarted: skiff stops because of it.
    Failed,
    /// Ended by itself (stdin at end of input).
    Ended,
    /// Stopped at shutdown.
    Stopped,
}

/// One component's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// What it is doing.
    pub state: State,
    /// How many times it was restarted since skiff started.
    pub restarts: u64,
    /// The last failure, with its kind: `panic: injected fault: input.run.panic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The health of every component, shared between the supervisor and readers. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<String, ComponentHealth>>>,
}

impl Health {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, ComponentHealth>) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Registers `component` as starting.
    pub(crate) fn add(&self, component: &str) {
        self.with(|m| {
            m.insert(
                component.to_owned(),
                ComponentHealth {
                    state: State::Starting,
                    restarts: 0,
                    last_error: None,
                },
            )
        });
    }

    /// Forgets `component` (an input removed while running).
    pub(crate) fn remove(&self, component: &str) {
        self.with(|m| {
            m.remove(component);
        });
    }

    /// Sets the state of `component`.
    pub(crate) fn set(&self, component: &str, state: State) {
        self.with(|m| {
            if let Some(c) = m.get_mut(component) {
                c.state = state;
            }
        });
    }

    /// Records a failure of `component` (and the state it is now in).
    pub(crate) fn failed(&self, component: &str, state: State, error: String) {
        self.with(|m| {
            if let Some(c) = m.get_mut(component) {
                c.state = state;
                c.last_error = Some(error);
            }
        });
    }

    /// Counts a restart of `component`.
    pub(crate) fn restarted(&self, component: &str) {
        self.with(|m| {
            if let Some(c) = m.get_mut(component) {
                c.restarts += 1;
                c.state = State::Running;
            }
        });
    }

    /// Every component's health, by name.
    pub fn snapshot(&self) -> BTreeMap<String, ComponentHealth> {
        self.with(|m| m.clone())
    }

    /// The health of one component.
    pub fn get(&self, component: &str) -> Option<ComponentHealth> {
        self.with(|m| m.get(component).cloned())
    }

    /// Whether no component has failed for good.
    pub fn ok(&self) -> bool {
        self.with(|m| m.values().all(|c| c.state != State::Failed))
    }

    /// The document of `GET /health`: `{"ok": bool, "components": {name: health}}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "ok": self.ok(), "components": self.snapshot() })
    }
}
