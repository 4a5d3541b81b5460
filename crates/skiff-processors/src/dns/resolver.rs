//! The `dns` processor's lookups: hickory-resolver on a thread of its own.
//!
//! Why a thread: processors are synchronous (they run in the input's task, see
//! `skiff_pipeline::Processor`), and DNS is asynchronous network I/O. The resolver lives on one
//! dedicated thread with a single-threaded Tokio runtime; the processor hands it a query through
//! a bounded channel and waits for the answer for at most the lookup deadline. The wait is
//! announced to Tokio (`block_in_place`) when the processor runs on a multi-threaded runtime, so
//! the other tasks of that worker move to another thread instead of waiting with it. Lookups of
//! several inputs run concurrently on the resolver thread.
//!
//! The thread ends when the processor is dropped (its channel closes), so a configuration
//! reload does not leak threads.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts, ServerOrderingStrategy,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Resolver, TokioResolver};

/// Lookups waiting for the resolver thread at most; more fail at once ("too many lookups").
const MAX_QUEUED: usize = 1024;

/// Why a lookup failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// The value cannot be asked for with this query type.
    #[error("{0}")]
    BadQuery(String),
    /// The server answered with an error or no record, or could not be reached.
    #[error("{0}")]
    Resolve(String),
    /// No answer before the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The resolver thread is gone or its queue is full (not cached: it is not about the name).
    #[error("{0}")]
    Unavailable(&'static str),
}

/// An answer: the values (addresses, names, texts) and the smallest TTL of the records.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The values, in the order of the answer section.
    pub values: Arc<[String]>,
    /// The smallest record TTL.
    pub ttl: Duration,
}

/// The query type (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    /// `reverse` or `PTR`: the host name of an IP address.
    Ptr,
    /// `A`: the IPv4 addresses of a name.
    A,
    /// `AAAA`: the IPv6 addresses of a name.
    Aaaa,
    /// `TXT`: the texts of a name.
    Txt,
}

impl QueryType {
    /// Reads `type` (case-insensitive, as Filebeat).
    pub fn parse(s: &str) -> Option<QueryType> {
        match s.to_ascii_lowercase().as_str() {
            "reverse" | "ptr" => Some(QueryType::Ptr),
            "a" => Some(QueryType::A),
            "aaaa" => Some(QueryType::Aaaa),
            "txt" => Some(QueryType::Txt),
            _ => None,
        }
    }

    /// The name and record type to ask for `value`.
    fn question(self, value: &str) -> Result<(Name, RecordType), LookupError> {
        match self {
            QueryType::Ptr => {
                let ip: IpAddr = value.trim().parse().map_err(|_| {
                    LookupError::BadQuery(format!("`{value}` is not an IP address"))
                })?;
                Ok((Name::from(ip), RecordType::PTR))
            }
            _ => {
                let mut name = Name::from_utf8(value.trim()).map_err(|e| {
                    LookupError::BadQuery(format!("`{value}` is not a domain name: {e}"))
                })?;
                // Filebeat asks for the name as written (fully qualified): no search domains.
                name.set_fqdn(true);
                let rt = match self {
                    QueryType::A => RecordType::A,
                    QueryType::Aaaa => RecordType::AAAA,
                    _ => RecordType::TXT,
                };
                Ok((name, rt))
            }
        }
    }
}

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The nameservers, asked in order.
    pub servers: Vec<SocketAddr>,
    /// DNS over TLS (`transport: tls`) with this client configuration; UDP when `None`.
    pub tls: Option<Arc<skiff_tls::rustls::ClientConfig>>,
    /// The time for one nameserver to answer (`timeout`).
    pub timeout: Duration,
}

impl Setup {
    /// The longest a lookup may take: every nameserver tried once, as Filebeat ("with 2
    /// nameservers the total timeout would be 2x").
    pub fn deadline(&self) -> Duration {
        let n = u32::try_from(self.servers.len().max(1)).unwrap_or(u32::MAX);
        self.timeout.saturating_mul(n)
    }
}

struct Job {
    question: (Name, RecordType),
    reply: SyncSender<Result<Answer, LookupError>>,
}

/// A handle on the resolver thread.
pub struct Lookups {
    jobs: tokio::sync::mpsc::Sender<Job>,
    deadline: Duration,
    kind: QueryType,
}

impl Lookups {
    /// Starts the resolver thread.
    pub fn start(setup: &Setup, kind: QueryType) -> std::io::Result<Lookups> {
        let resolver_setup = setup.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(MAX_QUEUED);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let deadline = setup.deadline();
        std::thread::Builder::new()
            .name("skiff-dns".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let resolver = Arc::new(build_resolver(&resolver_setup));
                    while let Some(job) = rx.recv().await {
                        let resolver = resolver.clone();
                        tokio::spawn(async move {
                            let (name, rt) = job.question;
                            let answer = tokio::time::timeout(deadline, resolver.lookup(name, rt))
                                .await
                                .map_err(|_| LookupError::Timeout(deadline))
                                .and_then(|r| r.map_err(|e| LookupError::Resolve(e.to_string())))
                                .and_then(|l| answer(l.records(), rt));
                            // The caller may have given up: nobody to tell then.
                            let _ = job.reply.send(answer);
                        });
                    }
                });
            })?;
        Ok(Lookups {
            jobs: tx,
            deadline,
            kind,
        })
    }

    /// Looks `value` up, waiting at most the deadline (plus a little for the thread switch).
    pub fn lookup(&self, value: &str) -> Result<Answer, LookupError> {
        let question = self.kind.question(value)?;
        let (reply, answer) = sync_channel(1);
        self.jobs
            .try_send(Job { question, reply })
            .map_err(|e| match e {
                tokio::sync::mpsc::error::TrySendError::Full(_) => {
                    LookupError::Unavailable("too many DNS lookups waiting")
                }
                tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                    LookupError::Unavailable("the DNS resolver thread stopped")
                }
            })?;
        let wait = self.deadline + Duration::from_millis(50);
        match blocking(|| answer.recv_timeout(wait)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(LookupError::Timeout(self.deadline)),
            Err(RecvTimeoutError::Disconnected) => {
                Err(LookupError::Unavailable("the DNS resolver thread stopped"))
            }
        }
    }
}

/// Runs a blocking wait, telling a multi-threaded Tokio runtime first so that the worker's other
/// tasks are not stuck behind it. (`block_in_place` cannot be used on a current-thread runtime;
/// there, as outside Tokio, the wait simply blocks, bounded by the lookup deadline.)
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn build_resolver(setup: &Setup) -> TokioResolver {
    let mut config = ResolverConfig::new();
    for addr in &setup.servers {
        let mut ns = match &setup.tls {
            Some(_) => {
                let mut ns = NameServerConfig::new(*addr, Protocol::Tls);
                ns.tls_dns_name = Some(addr.ip().to_string());
                ns
            }
            None => NameServerConfig::new(*addr, Protocol::Udp),
        };
        ns.trust_negative_responses = true;
        config.add_name_server(ns);
    }
    let mut builder = Resolver::builder_with_config(config, TokioConnectionProvider::default());
    let o: &mut ResolverOpts = builder.options_mut();
    o.timeout = setup.timeout;
    // One try per nameserver, one nameserver at a time, in the order given (Filebeat's).
    o.attempts = 1;
    o.num_concurrent_reqs = 1;
    o.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
    // The processor caches answers and failures itself (see `cache`).
    o.cache_size = 0;
    // Filebeat's processor does not read /etc/hosts.
    o.use_hosts_file = ResolveHosts::Never;
    if let Some(tls) = &setup.tls {
        o.tls_config = (**tls).clone();
    }
    builder.build()
}

/// The values of the records of the asked type.
fn answer(
    records: &[hickory_resolver::proto::rr::Record],
    rt: RecordType,
) -> Result<Answer, LookupError> {
    let mut values = Vec::new();
    let mut ttl = u32::MAX;
    for r in records.iter().filter(|r| r.record_type() == rt) {
        ttl = ttl.min(r.ttl());
        match r.data() {
            RData::PTR(p) => values.push(p.0.to_utf8().trim_end_matches('.').to_owned()),
            RData::A(a) => values.push(a.0.to_string()),
            RData::AAAA(a) => values.push(a.0.to_string()),
            RData::TXT(t) => values.push(
                t.txt_data()
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<String>(),
            ),
            _ => {}
        }
    }
    if values.is_empty() {
        return Err(LookupError::Resolve(format!(
            "no {rt} record in the answer"
        )));
    }
    Ok(Answer {
        values: values.into(),
        ttl: Duration::from_secs(u64::from(ttl)),
    })
}

/// The nameservers of /etc/resolv.conf (Filebeat's default when `nameservers` is empty).
pub fn system_nameservers() -> Result<Vec<IpAddr>, String> {
    let (config, _) = hickory_resolver::system_conf::read_system_conf()
        .map_err(|e| format!("cannot read the system's nameservers (/etc/resolv.conf): {e}"))?;
    let mut out: Vec<IpAddr> = Vec::new();
    for ns in config.name_servers() {
        if !out.contains(&ns.socket_addr.ip()) {
            out.push(ns.socket_addr.ip());
        }
    }
    Ok(out)
}
