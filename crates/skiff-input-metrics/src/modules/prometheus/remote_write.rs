//! `remote_write`: a receiver for Prometheus's remote write protocol (1.0), as Metricbeat's
//! prometheus `remote_write` metricset. Prometheus POSTs snappy-compressed protobuf
//! `WriteRequest`s to `http://<host>:<port>/write`; each sample becomes part of an event.
//!
//! Options (besides `metrics_count`): `host` (default `localhost`), `port` (default 9201),
//! `ssl.*` (serve HTTPS: `certificate` and `key`, plus `certificate_authorities` to require
//! client certificates), `max_compressed_body_bytes` (default 2 MiB) and
//! `max_decoded_body_bytes` (default 10 MiB), Metricbeat's bounds: a bigger body is answered
//! 413 before it is decompressed. `hosts` is not used (list `remote_write` in a block of its
//! own). `use_types`/`rate_counters` are refused, as for `collector`.
//!
//! Events: one per label set and sample timestamp, as Metricbeat: the series' labels but
//! `__name__` under `prometheus.labels.*`, the values of every metric with those labels at that
//! time under `prometheus.metrics.<name>`, `@timestamp` the samples' time. NaN and ±Inf (also
//! Prometheus's staleness markers) are dropped; native histograms and exemplars are ignored.
//!
//! It is a push metricset: the block runs it as a [`Listener`] (see [`crate::listener`]), not on
//! the period. **At least once:** a request is answered 204 only after skiff's output
//! acknowledged every event of it. Prometheus keeps the samples in its WAL and sends them again
//! on a 5xx answer or a timeout (`remote_timeout`, default 30 s), so nothing is lost while skiff
//! or its output is down; a request that was delivered but whose answer came too late (or was
//! lost) is sent again and its events are published twice. Answers: 204 delivered, 400 not
//! snappy/protobuf (Prometheus does not retry it), 404 other paths, 405 not POST, 413 too big,
//! 503 skiff stopping before delivery (Prometheus retries).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prost::Message;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Timestamp};
use skiff_tls::{SslConfig, SslServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::text::number;
use crate::listener::{Listener, NotDelivered, Sink};
use crate::{Error, Fetcher, MetricEvent};

/// Metricbeat's default bound on the compressed body.
pub const DEFAULT_MAX_COMPRESSED: usize = 2 << 20;
/// Metricbeat's default bound on the decompressed body.
pub const DEFAULT_MAX_DECODED: usize = 10 << 20;

/// `prometheus.WriteRequest` (remote write 1.0), the fields skiff reads. The messages are
/// declared here with prost's derive instead of generated from Prometheus's `.proto` files:
/// four small messages do not justify a build script and `protoc`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Its labels, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Its samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Why a body was refused, with the HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// 400 or 413.
    pub status: u16,
    /// Why.
    pub reason: String,
}

fn refused(status: u16, reason: impl Into<String>) -> Refused {
    Refused {
        status,
        reason: reason.into(),
    }
}

/// Decompresses (snappy block format) and decodes a request body, refusing one that would
/// decompress to more than `max_decoded` bytes before allocating it.
pub fn decode(body: &[u8], max_decoded: usize) -> Result<WriteRequest, Refused> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| refused(400, format!("not a snappy-compressed body: {e}")))?;
    if len > max_decoded {
        return Err(refused(
            413,
            format!(
                "decoded length {len} is over max_decoded_body_bytes ({max_decoded}): raise it or lower Prometheus's queue_config.max_samples_per_send"
            ),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| refused(400, format!("snappy: {e}")))?;
    WriteRequest::decode(raw.as_slice())
        .map_err(|e| refused(400, format!("not a protobuf WriteRequest: {e}")))
}

/// The events of a request: one per label set and timestamp.
pub fn events(req: WriteRequest, metrics_count: bool) -> Vec<MetricEvent> {
    let mut groups: BTreeMap<(Vec<(String, String)>, i64), Map> = BTreeMap::new();
    for series in req.timeseries {
        let mut name = None;
        let mut labels = Vec::with_capacity(series.labels.len());
        for l in series.labels {
            if l.name == "__name__" {
                name = Some(l.value);
            } else {
                labels.push((l.name, l.value));
            }
        }
        let Some(name) = name else { continue };
        labels.sort();
        for s in series.samples {
            if !s.value.is_finite() {
                continue;
            }
            groups
                .entry((labels.clone(), s.timestamp))
                .or_default()
                .insert(name.clone(), number(s.value));
        }
    }
    groups
        .into_iter()
        .map(|((labels, ts), metrics)| {
            let mut ev = super::labelled_event(labels, metrics, metrics_count);
            ev.timestamp = Some(Timestamp(ts.saturating_mul(1_000_000)));
            ev
        })
        .collect()
}

/// The receiver's settings.
pub(super) struct Settings {
    /// `host:port` to listen on.
    pub addr: String,
    /// `max_compressed_body_bytes`.
    pub max_compressed: usize,
    /// `max_decoded_body_bytes`.
    pub max_decoded: usize,
    /// `metrics_count`.
    pub metrics_count: bool,
    /// HTTPS, from `ssl.*`.
    pub tls: Option<TlsAcceptor>,
}

/// The server side TLS settings from the block's `ssl.*` (which the framework reads with the
/// client's schema, shared by every module): certificate and key, and client certificates
/// required when `certificate_authorities` is set, as in Beats.
pub(super) fn server_tls(ssl: &SslConfig, own: &Node) -> Result<Option<TlsAcceptor>, ConfigErrors> {
    if !ssl.is_enabled() {
        return Ok(None);
    }
    let server = SslServerConfig {
        enabled: Some(true),
        certificate: ssl.certificate.clone(),
        key: ssl.key.clone(),
        key_passphrase: ssl.key_passphrase.clone(),
        certificate_authorities: ssl.certificate_authorities.clone(),
        supported_protocols: ssl.supported_protocols.clone(),
        cipher_suites: ssl.cipher_suites.clone(),
        ..SslServerConfig::default()
    };
    skiff_tls::server_config(&server)
        .map(|c| Some(TlsAcceptor::from(c)))
        .map_err(|e| crate::config_error(own, format!("remote_write ssl: {e}")))
}

/// The `remote_write` fetcher: it has nothing to fetch; it hands the block its listener.
pub(super) struct RemoteWrite {
    pub settings: Arc<Settings>,
}

#[async_trait]
impl Fetcher for RemoteWrite {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        // What `skiff test modules` shows: whether the port can be taken, then what to do.
        let probe = TcpListener::bind(&self.settings.addr)
            .await
            .map_err(|e| Error::Connect {
                what: format!("listening on {}", self.settings.addr),
                reason: e.to_string(),
            })?;
        drop(probe);
        Err(Error::Other(format!(
            "remote_write receives, it does not fetch: {} is free; point Prometheus's remote_write.url at {}://{}/write",
            self.settings.addr,
            if self.settings.tls.is_some() {
                "https"
            } else {
                "http"
            },
            self.settings.addr
        )))
    }

    fn listener(&mut self) -> Option<Box<dyn Listener>> {
        Some(Box::new(Receiver {
            settings: self.settings.clone(),
        }))
    }
}

struct Receiver {
    settings: Arc<Settings>,
}

#[async_trait]
impl Listener for Receiver {
    async fn listen(&mut self, sink: Sink) -> Result<(), Error> {
        let addr = self.settings.addr.clone();
        let listener = TcpListener::bind(&addr).await.map_err(|e| Error::Connect {
            what: format!("remote_write listening on {addr}"),
            reason: e.to_string(),
        })?;
        tracing::info!(listen = %addr, tls = self.settings.tls.is_some(), "prometheus remote_write receiver listening");
        let handler = Arc::new(Handler {
            settings: self.settings.clone(),
            sink: sink.clone(),
        });
        let tls = self.settings.tls.clone();
        skiff_input_http::server::serve_until(
            listener,
            tls,
            sink.shutdown(),
            "prometheus remote_write",
            move |req| {
                let h = handler.clone();
                async move { h.handle(req).await }
            },
        )
        .await;
        Ok(())
    }
}

struct Handler {
    settings: Arc<Settings>,
    sink: Sink,
}

fn answer(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = code;
    r
}

impl Handler {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() != "/write" {
            return answer(
                StatusCode::NOT_FOUND,
                "remote_write receives at /write only",
            );
        }
        if req.method() != Method::POST {
            return answer(StatusCode::METHOD_NOT_ALLOWED, "POST a WriteRequest");
        }
        let max = self.settings.max_compressed;
        let body = match Limited::new(req.into_body(), max).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body over max_compressed_body_bytes ({max})"),
                );
            }
            Err(_) => return answer(StatusCode::BAD_REQUEST, "the body could not be read"),
        };
        let request = match decode(&body, self.settings.max_decoded) {
            Ok(r) => r,
            Err(r) => {
                tracing::debug!(status = r.status, reason = %r.reason, "remote_write: request refused");
                let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
                return answer(code, &r.reason);
            }
        };
        let events = events(request, self.settings.metrics_count);
        match self.sink.publish(events).await {
            Ok(()) => answer(StatusCode::NO_CONTENT, ""),
            Err(NotDelivered::Stopping) => answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "skiff is stopping before the samples were delivered: send again",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
        let mut l = vec![Label {
            name: "__name__".into(),
            value: name.into(),
        }];
        l.extend(labels.iter().map(|(k, v)| Label {
            name: (*k).into(),
            value: (*v).into(),
        }));
        TimeSeries {
            labels: l,
            samples: samples
                .iter()
                .map(|(value, timestamp)| Sample {
                    value: *value,
                    timestamp: *timestamp,
                })
                .collect(),
        }
    }

    #[test]
    fn one_event_per_label_set_and_timestamp() {
        let req = WriteRequest {
            timeseries: vec![
                series("up", &[("job", "a")], &[(1.0, 1000), (0.0, 2000)]),
                series("scrape_samples", &[("job", "a")], &[(12.5, 1000)]),
                series("up", &[("job", "b")], &[(f64::NAN, 1000)]),
                series("x", &[], &[(3.0, 1000)]),
            ],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let decoded = decode(&body, 1 << 20).unwrap();
        assert_eq!(decoded.encode_to_vec(), req.encode_to_vec());
        let evs = events(decoded, true);
        // (job=a, 1000): up + scrape_samples; (job=a, 2000): up; (none, 1000): x; NaN dropped.
        assert_eq!(evs.len(), 3, "{evs:?}");
        let a1 = evs
            .iter()
            .find(|e| {
                e.timestamp == Some(Timestamp(1_000_000_000))
                    && e.module_fields.contains_key("labels")
            })
            .unwrap();
        assert_eq!(a1.module_fields["labels"]["job"], "a");
        assert_eq!(a1.module_fields["metrics"]["up"], 1);
        assert_eq!(a1.module_fields["metrics"]["scrape_samples"], 12.5);
        assert_eq!(a1.root_fields["metrics_count"], 2);
        let bare = evs
            .iter()
            .find(|e| !e.module_fields.contains_key("labels"))
            .unwrap();
        assert_eq!(bare.module_fields["metrics"]["x"], 3);
    }

    #[test]
    fn hostile_bodies_are_refused_before_allocation() {
        assert_eq!(
            decode(b"not snappy at all", 1 << 20).unwrap_err().status,
            400
        );
        // A snappy header that claims 4 GiB.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(decode(&claim, 1 << 20).unwrap_err().status, 413);
        let junk = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
        assert_eq!(decode(&junk, 1 << 20).unwrap_err().status, 400);
    }

    proptest::proptest! {
        #[test]
        fn hostile_bodies_do_not_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300), compress in proptest::bool::ANY) {
            let body = if compress {
                snap::raw::Encoder::new().compress_vec(&raw).unwrap()
            } else {
                raw
            };
            if let Ok(req) = decode(&body, 1 << 16) {
                let _ = events(req, true);
            }
        }
    }
}
