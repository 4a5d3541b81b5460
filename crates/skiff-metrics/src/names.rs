//! Every metric skiff reports, in one table.
//!
//! To add a metric: add a `pub const` here, add it to [`ALL`], and describe it in
//! `docs/metrics.md` (a test in the `skiff` crate fails until you do). Names are stable: renaming
//! one breaks somebody's dashboard.

/// Whether a metric only grows or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (until restart).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A metric's definition.
#[derive(Debug, PartialEq, Eq)]
pub struct Def {
    /// Dotted name, as in the Beats' `/stats` JSON.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// What it means, in one sentence (also the Prometheus HELP text).
    pub help: &'static str,
}

macro_rules! defs {
    ($($(#[$m:meta])* $id:ident = $kind:ident $name:literal $help:literal;)*) => {
        $($(#[$m])* pub const $id: Def = Def { name: $name, kind: Kind::$kind, help: $help };)*
        /// Every metric, for documentation checks and listings.
        pub const ALL: &[&Def] = &[$(&$id),*];
    };
}

defs! {
    /// Events that entered the pipeline from inputs (after processors).
    PIPELINE_EVENTS_PUBLISHED = Counter "libbeat.pipeline.events.published" "Events accepted into the queue from inputs.";
    /// Events a processor dropped.
    PIPELINE_EVENTS_FILTERED = Counter "libbeat.pipeline.events.filtered" "Events dropped on purpose by processors (drop_event, include/exclude rules).";
    /// Events dropped because the queue was full (only with when_full: drop_newest).
    PIPELINE_EVENTS_DROPPED = Counter "libbeat.pipeline.events.dropped" "Events dropped because the queue was full and queue.*.when_full is drop_newest.";
    /// Events published and not yet acknowledged.
    PIPELINE_EVENTS_ACTIVE = Gauge "libbeat.pipeline.events.active" "Events in the pipeline (queued or being sent) and not yet acknowledged.";
    /// Times an input waited because the queue was full.
    PIPELINE_BLOCKED = Counter "skiff.pipeline.backpressure.waits" "Times an input had to wait because the queue was full (backpressure).";
    /// Events in the queue.
    QUEUE_FILLED_EVENTS = Gauge "libbeat.pipeline.queue.filled.events" "Events held in the queue (waiting or being sent).";
    /// Accounted bytes in the queue.
    QUEUE_FILLED_BYTES = Gauge "libbeat.pipeline.queue.filled.bytes" "Bytes of events held in the memory queue, as accounted against queue.mem.max_bytes.";
    /// The queue's event limit.
    QUEUE_MAX_EVENTS = Gauge "libbeat.pipeline.queue.max_events" "The queue's capacity in events.";
    /// The queue's byte limit.
    QUEUE_MAX_BYTES = Gauge "libbeat.pipeline.queue.max_bytes" "The queue's capacity in bytes.";
    /// Events removed from the queue after acknowledgement.
    QUEUE_ACKED = Counter "libbeat.pipeline.queue.acked" "Events acknowledged by the output and removed from the queue.";
    /// Age of the oldest event not yet acknowledged.
    QUEUE_OLDEST_AGE_MS = Gauge "skiff.queue.oldest_unacked_age.ms" "Age in milliseconds of the oldest event in the queue not yet acknowledged (0 when empty).";
    /// Disk queue size on disk.
    DISK_QUEUE_BYTES = Gauge "skiff.queue.disk.bytes" "Bytes used by the disk queue's segment files.";
    /// Disk queue events.
    DISK_QUEUE_EVENTS = Gauge "skiff.queue.disk.events" "Events stored in the disk queue and not yet acknowledged by the output.";
    /// Disk queue fsyncs.
    DISK_QUEUE_SYNCS = Counter "skiff.queue.disk.fsyncs" "fsync calls made by the disk queue.";
    /// Failed fsyncs of the disk queue.
    DISK_QUEUE_SYNC_FAILURES = Counter "skiff.queue.disk.fsync_failures" "fsyncs of the disk queue that failed: the events they covered are not acknowledged to their inputs (read again after a restart) and writing goes on in a new segment.";
    /// Corrupt records found.
    DISK_QUEUE_CORRUPT = Counter "skiff.queue.disk.corrupt_records" "Records cut off because their checksum or framing was damaged (after a crash).";

    /// Events handed to the output.
    OUTPUT_EVENTS_TOTAL = Counter "libbeat.output.events.total" "Events handed to the output to send (retries count again).";
    /// Events the output acknowledged.
    OUTPUT_EVENTS_ACKED = Counter "libbeat.output.events.acked" "Events the output's server confirmed.";
    /// Events that failed and will be retried.
    OUTPUT_EVENTS_FAILED = Counter "libbeat.output.events.failed" "Event sends that failed (they are retried).";
    /// Events dropped by the output.
    OUTPUT_EVENTS_DROPPED = Counter "libbeat.output.events.dropped" "Events given up on: rejected by the server or out of retries (dead-lettered when a dead-letter file is set).";
    /// Batches sent.
    OUTPUT_EVENTS_BATCHES = Counter "libbeat.output.events.batches" "Batches handed to the output.";
    /// Events being sent right now.
    OUTPUT_EVENTS_ACTIVE = Gauge "libbeat.output.events.active" "Events in batches being sent right now.";
    /// Bytes written.
    OUTPUT_WRITE_BYTES = Counter "libbeat.output.write.bytes" "Bytes written by the output (to the network or a file, after compression).";
    /// Write errors.
    OUTPUT_WRITE_ERRORS = Counter "libbeat.output.write.errors" "Errors writing to the output (connection, I/O, protocol).";
    /// Read errors.
    OUTPUT_READ_ERRORS = Counter "libbeat.output.read.errors" "Errors reading the output server's replies.";
    /// Batch retries.
    OUTPUT_RETRIES = Counter "skiff.output.retries" "Times a batch (or part of it) was sent again after a failure.";
    /// Dead-lettered events.
    OUTPUT_DEAD_LETTERED = Counter "skiff.output.dead_lettered" "Events the output rejected permanently and that were written to the dead-letter file.";
    /// Failed sends by class.
    OUTPUT_ERRORS = Counter "skiff.output.errors" "Whole-batch send failures of the outputs, by class (label `kind`: connect, tls, auth, rejected, protocol, overloaded, timeout, io, panic, other).";
    /// Output worker restarts.
    OUTPUT_WORKER_RESTARTS = Counter "skiff.output.worker.restarts" "Times an output worker recovered from a panic in its client (client reset, batch retried).";

    /// Accounted bytes per memory stage.
    MEMORY_ACCOUNTED = Gauge "skiff.memory.accounted.bytes" "Bytes held in accounted buffers, by stage (label `stage`).";
    /// Configured memory limit per stage.
    MEMORY_LIMIT = Gauge "skiff.memory.limit.bytes" "The configured byte limit of each accounted stage (label `stage`).";

    /// Files being read.
    FILES_OPEN = Gauge "filebeat.harvester.open_files" "Files open for reading right now.";
    /// Harvesters running.
    FILES_RUNNING = Gauge "filebeat.harvester.running" "Readers (harvesters) running right now.";
    /// Harvesters started.
    FILES_STARTED = Counter "filebeat.harvester.started" "Readers (harvesters) started.";
    /// Harvesters closed.
    FILES_CLOSED = Counter "filebeat.harvester.closed" "Readers (harvesters) closed.";
    /// Files known.
    FILES_KNOWN = Gauge "skiff.input.file.known" "Files known to the registry (read, being read, or waiting).";
    /// Bytes not yet acked.
    FILES_UNACKED_BYTES = Gauge "skiff.input.file.unacked_bytes" "Bytes of known files not yet acknowledged by the output (size minus acknowledged offset, summed).";
    /// Lines truncated.
    FILES_TRUNCATED_LINES = Counter "skiff.input.file.truncated_lines" "Lines longer than message_max_bytes, cut at the limit and flagged.";
    /// File readers that died and were reopened.
    FILES_READER_RESTARTS = Counter "skiff.input.file.reader_restarts" "File readers that died (a panic) and whose file was read again from its acknowledged offset.";
    /// Registry writes.
    REGISTRAR_WRITES = Counter "registrar.writes.success" "Registry writes of the file inputs (each one append + fsync, or one rewrite), summed over inputs.";
    /// Registry writes that failed.
    REGISTRAR_WRITE_FAILURES = Counter "registrar.writes.fail" "Registry writes of the file inputs that failed (retried at the next commit).";
    /// Registry lines that could not be read at start-up (issue 9, hardening).
    REGISTRY_DAMAGED = Counter "skiff.input.file.registry.damaged_records" "Lines of a file input's registry that could not be read when it was loaded (damage, a torn write) and were skipped; the whole file is kept in a backup, and files whose state was lost are read again.";
    /// Events read by inputs.
    INPUT_EVENTS = Counter "skiff.input.events" "Events read by inputs, by input id (label `input`).";
    /// Bytes read by inputs.
    INPUT_BYTES = Counter "skiff.input.bytes" "Bytes read by inputs, by input id (label `input`).";
    /// Lumberjack clients refused over max_connections.
    LUMBERJACK_REFUSED = Counter "skiff.input.lumberjack.connections.refused" "Connections the lumberjack input closed at once because it already served max_connections clients (label `input`).";
    /// Lumberjack connections closed by the input, by reason.
    LUMBERJACK_CLOSED = Counter "skiff.input.lumberjack.connections.closed" "Connections the lumberjack input closed on its side (labels `input` and `reason`: handshake_timeout, idle_timeout, read_timeout, write_timeout, protocol_error).";
    /// Lumberjack connections that stopped reading at their limits.
    LUMBERJACK_PAUSES = Counter "skiff.input.lumberjack.backpressure.waits" "Times a lumberjack connection stopped reading because its unacknowledged events reached max_window_size or max_batch_size, or the input reached max_pending_bytes (label `input`).";
    // Network inputs (tcp, udp, unix, syslog): skiff-input-net.
    /// Messages a network input received and dropped, by reason.
    NET_DROPPED = Counter "skiff.input.net.dropped" "Messages a network input received and dropped (labels `input` and `reason`: pipeline_full, a datagram that arrived while the input's hold of 4096 datagrams waited for room in the queue; too_large, over max_message_size).";
    /// Open connections of a stream network input.
    NET_CONNECTIONS = Gauge "skiff.input.net.connections" "Connections open on a tcp, unix stream or syslog input (label `input`).";
    /// Datagrams the kernel dropped at a UDP input's socket.
    UDP_KERNEL_DROPS = Counter "skiff.input.udp.kernel_drops" "Datagrams the kernel dropped at a udp or syslog-over-udp input's socket because its receive buffer (read_buffer) was full, from /proc/net/udp (label `input`).";
    /// Input restarts by the supervisor.
    INPUT_RESTARTS = Counter "skiff.input.restarts" "Times an input was restarted after a panic or an error, by input id (label `input`).";
    /// Input failures by kind.
    INPUT_FAILURES = Counter "skiff.input.failures" "Input failures (panic or error return), by input id and failure kind (labels `input`, `kind`).";

    // Configuration loading and reloading (issue 10).
    /// Warnings of the configuration in use.
    CONFIG_WARNINGS = Gauge "skiff.config.warnings" "Warnings of the configuration in use (keys Filebeat would ignore, ignored sections), as listed by skiff test config.";
    /// Reloads of input files by result.
    CONFIG_RELOADS = Counter "skiff.config.reloads" "Reloads of filebeat.config.inputs files and of the main file on SIGHUP, by result (label `result`: applied, unchanged, failed).";
    /// Inputs started and stopped by reloads.
    CONFIG_RELOAD_INPUTS = Counter "skiff.config.reload.inputs" "Inputs started, stopped or restarted by reloads (label `action`: started, stopped, restarted).";
    // Autodiscover (crates/skiff-autodiscover).
    /// Changes reported by autodiscover providers.
    AUTODISCOVER_CHANGES = Counter "skiff.autodiscover.changes" "Containers reported started or stopped by autodiscover providers (labels `provider`, `change`: start, stop).";
    /// Inputs started and stopped by autodiscover.
    AUTODISCOVER_INPUTS = Counter "skiff.autodiscover.inputs" "Inputs autodiscover started, stopped or failed to start (labels `provider`, `action`: started, stopped, failed).";
    /// Inputs autodiscover runs now.
    AUTODISCOVER_RUNNING = Gauge "skiff.autodiscover.running" "Inputs autodiscover runs now, for the containers its providers found (label `provider`).";
    // Metrics modules (crates/skiff-input-metrics).
    /// Fetches of metricsets.
    METRICS_FETCHES = Counter "skiff.metrics.fetches" "Fetches of a metrics module's metricset from one host (labels `module`, `metricset`).";
    /// Failed fetches.
    METRICS_FETCH_ERRORS = Counter "skiff.metrics.fetch.errors" "Fetches that failed and were published as an error event (labels `module`, `metricset`).";
    /// Metric events produced.
    METRICS_EVENTS = Counter "skiff.metrics.events" "Events the metrics modules produced, error events included (labels `module`, `metricset`).";

    /// Resident set size.
    PROCESS_RSS_BYTES = Gauge "beat.memstats.rss" "Resident set size of the skiff process, in bytes.";
    /// CPU time.
    PROCESS_CPU_MS = Gauge "beat.cpu.total.time.ms" "CPU time used by the skiff process (user + system), in milliseconds.";
    /// Uptime.
    PROCESS_UPTIME_MS = Gauge "beat.info.uptime.ms" "Milliseconds since skiff started.";
    // --- packet input (issue 12) ---
    /// Frames read by the packet input (live or from a file).
    PACKET_RECEIVED = Counter "packetbeat.packets.received" "Frames read by the packet input (live capture or file).";
    /// Frames that did not decode.
    PACKET_MALFORMED = Counter "packetbeat.packets.malformed" "Frames skipped because their headers did not decode (counted, never fatal).";
    /// TCP gaps reported to protocol parsers.
    PACKET_TCP_GAPS = Counter "packetbeat.tcp.gaps" "Holes in TCP streams (bytes never captured) reported to the protocol parsers.";
    /// TCP connections evicted to stay within the reassembly budget.
    PACKET_TCP_EVICTED = Counter "packetbeat.tcp.connections.evicted" "Connections (TCP, and UDP address pairs) dropped, oldest first, to stay within packetbeat.reassembly.max_bytes.";
    /// Connections tracked now.
    PACKET_CONNECTIONS = Gauge "packetbeat.connections.active" "Connections (TCP, and UDP address pairs) tracked by the packet input right now.";
    /// Transactions published.
    PACKET_TRANSACTIONS = Counter "packetbeat.transactions.published" "Transaction and flow events produced by the packet input.";
    /// Packets the kernel dropped (live capture).
    PACKET_KERNEL_DROPPED = Gauge "packetbeat.capture.kernel_dropped" "Packets the kernel dropped because the capture buffer was full (libpcap ps_drop, live capture).";
    /// Packets the interface dropped (live capture).
    PACKET_IF_DROPPED = Gauge "packetbeat.capture.interface_dropped" "Packets dropped by the network interface or its driver (libpcap ps_ifdrop, live capture).";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(!a.help.is_empty() && a.help.ends_with('.'), "{}", a.name);
            assert!(
                a.name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'.'
                    || b == b'_'),
                "{}",
                a.name
            );
            for b in &ALL[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
    }
}

#[cfg(test)]
mod docs_tests {
    use super::ALL;

    /// docs/metrics.md must describe every metric (and name no metric that does not exist).
    #[test]
    fn every_metric_is_documented() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
        let doc = std::fs::read_to_string(path).expect("docs/metrics.md");
        let missing: Vec<&str> = ALL
            .iter()
            .map(|d| d.name)
            .filter(|n| !doc.contains(&format!("`{n}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "add these to docs/metrics.md: {missing:?}"
        );
        for line in doc.lines().filter(|l| l.starts_with("| `")) {
            let name = line
                .trim_start_matches("| `")
                .split('`')
                .next()
                .unwrap_or("");
            assert!(
                ALL.iter().any(|d| d.name == name),
                "docs/metrics.md lists `{name}`, which names.rs does not define"
            );
        }
    }
}
