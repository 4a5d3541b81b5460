//! skiff's internal metrics.
//!
//! Every metric is declared once, in [`names`], with its kind and a sentence saying what it
//! means; `docs/metrics.md` is checked against that table by a test, so the documentation and
//! the code cannot drift apart. Names are the Beats' own where a Beat has the same metric
//! (`libbeat.output.events.acked`), so existing dashboards keep working, and `skiff.*` otherwise.
//!
//! Values are plain atomics: recording a metric on the hot path is one relaxed add. The
//! [`Registry`] renders them two ways: the nested JSON of the Beats' `/stats` endpoint, and the
//! Prometheus text format for `/metrics` (`libbeat.output.events.acked` becomes
//! `skiff_libbeat_output_events_acked_total`).
//!
//! ```
//! use skiff_metrics::{Registry, names};
//! let reg = Registry::new();
//! let acked = reg.counter(&names::OUTPUT_EVENTS_ACKED);
//! acked.add(3);
//! assert_eq!(reg.json()["libbeat"]["output"]["events"]["acked"], 3);
//! assert!(reg.prometheus().contains("skiff_libbeat_output_events_acked_total 3"));
//! ```

pub mod names;
mod registry;

pub use names::{Def, Kind};
pub use registry::{Counter, Gauge, Registry};
