//! The HTTP side of HTTP-based metricsets: the URL Metricbeat would ask (default scheme and
//! path, `query`, credentials), one `reqwest` client per module block (TLS from `ssl.*` through
//! skiff-tls), bodies read with a size cap, and errors in words.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use skiff_tls::SslConfig;

use crate::{Error, FetchContext};

/// The largest body a metricset reads: a bigger answer is an error, not an allocation.
pub const MAX_BODY: usize = 64 << 20;

/// HTTP settings of a module block.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// `ssl.*`: TLS client settings. Default: none (TLS only for `https://` hosts, with the
    /// system's trust store).
    #[serde(default)]
    pub ssl: Option<SslConfig>,
    /// `headers`: extra request headers. Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `bearer_token_file`: a file whose content is sent as `Authorization: Bearer`. Default: none.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// `query`: extra URL query parameters. Default: none.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// `connect_timeout`: bound on connecting. Default: `timeout`.
    #[serde(default)]
    pub connect_timeout: Option<skiff_config::Duration>,
}

/// [`HttpOptions`] plus the block's shared client, built on first use.
#[derive(Clone, Debug, Default)]
pub struct HttpSettings {
    /// The options.
    pub options: HttpOptions,
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
}

impl HttpSettings {
    /// Settings from options; the client is built when a fetcher first needs it.
    pub fn new(options: HttpOptions) -> HttpSettings {
        HttpSettings {
            options,
            client: Arc::default(),
        }
    }

    fn client(&self, timeout: Duration) -> Result<reqwest::Client, Error> {
        self.client
            .get_or_init(|| {
                let ssl = self.options.ssl.clone().unwrap_or_default();
                let tls = skiff_tls::client_config(&ssl).map_err(|e| e.to_string())?;
                let connect = self.options.connect_timeout.map_or(timeout, |d| d.0);
                reqwest::Client::builder()
                    .use_preconfigured_tls((*tls).clone())
                    .connect_timeout(connect)
                    .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Error::Other)
    }
}

/// The options of a server's status page module (apache, nginx): where the page is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusPageConfig {
    /// `server_status_path`: default `/server-status`, as Metricbeat's modules.
    #[serde(default)]
    server_status_path: Option<String>,
}

/// The fetch of a server's status page and the host name its events carry, from a module
/// block whose one option is `server_status_path` (apache's and nginx's modules share it).
pub fn status_page(
    ctx: &FetchContext,
    own: &skiff_config::Node,
    query: &str,
) -> Result<(HttpFetch, String), skiff_config::ConfigErrors> {
    let cfg: StatusPageConfig = own.deserialize()?;
    let path = cfg
        .server_status_path
        .as_deref()
        .unwrap_or("/server-status");
    let http = HttpFetch::new(ctx, path, query).map_err(|e| crate::config_error(own, e))?;
    let hostname = ctx
        .host
        .as_ref()
        .map_or_else(String::new, |h| h.address.clone());
    Ok((http, hostname))
}

/// A URL to GET every fetch.
#[derive(Clone, Debug)]
pub struct HttpFetch {
    client: reqwest::Client,
    /// The URL asked (credentials removed: they go in the `Authorization` header).
    pub url: String,
    auth: Option<(String, Option<String>)>,
    headers: Vec<(String, String)>,
    bearer_file: Option<PathBuf>,
    timeout: Duration,
}

impl HttpFetch {
    /// The URL of `ctx`'s host: `http://` when it has no scheme (`https://` with `ssl`
    /// enabled), `path` when the host has none (Metricbeat's `<metricset>.path` or the
    /// metricset's default), the block's `query` added.
    pub fn new(ctx: &FetchContext, path: &str, query: &str) -> Result<HttpFetch, Error> {
        let raw = ctx.host.as_ref().map_or("localhost", |h| h.raw.as_str());
        let tls = ctx
            .http
            .options
            .ssl
            .as_ref()
            .is_some_and(|s| s.is_enabled());
        let with_scheme = if raw.contains("://") {
            raw.to_owned()
        } else if tls {
            format!("https://{raw}")
        } else {
            format!("http://{raw}")
        };
        let mut url = url::Url::parse(&with_scheme)
            .map_err(|e| Error::Other(format!("host `{raw}` is not a valid URL: {e}")))?;
        if url.path().is_empty() || url.path() == "/" {
            url.set_path(path);
        }
        if !query.is_empty() && url.query().is_none() {
            url.set_query(Some(query));
        }
        if !ctx.http.options.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &ctx.http.options.query {
                pairs.append_pair(k, v);
            }
        }
        let auth = if !url.username().is_empty() {
            let user = percent_decode(url.username());
            let pass = url.password().map(percent_decode);
            Some((user, pass))
        } else {
            ctx.username.clone().map(|u| (u, ctx.password.clone()))
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(HttpFetch {
            client: ctx.http.client(ctx.timeout)?,
            url: url.to_string(),
            auth,
            headers: ctx
                .http
                .options
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            bearer_file: ctx.http.options.bearer_token_file.clone(),
            timeout: ctx.timeout,
        })
    }

    /// GETs the URL and returns the body (at most [`MAX_BODY`] bytes).
    pub async fn get(&self) -> Result<Bytes, Error> {
        let mut req = self.client.get(&self.url).timeout(self.timeout);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, p.as_ref());
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(f) = &self.bearer_file {
            let token = std::fs::read_to_string(f).map_err(|source| Error::Io {
                what: format!("reading bearer_token_file {}", f.display()),
                source,
            })?;
            req = req.bearer_auth(token.trim());
        }
        let mut resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                Error::Timeout(self.timeout)
            } else {
                Error::Connect {
                    what: self.url.clone(),
                    reason: skiff_tls::explain(&e, &self.url),
                }
            }
        })?;
        let status = resp.status();
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Connect {
            what: self.url.clone(),
            reason: e.to_string(),
        })? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Error::parse(
                    &self.url,
                    format!("the answer is larger than {MAX_BODY} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(Error::Auth {
                what: self.url.clone(),
                reason: format!("HTTP {status}: check username and password"),
            });
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(Error::Status {
                url: self.url.clone(),
                status: status.to_string(),
                body: text.trim().to_owned(),
            });
        }
        Ok(body.freeze())
    }

    /// GETs the URL and parses the body as JSON.
    pub async fn get_json(&self) -> Result<serde_json::Value, Error> {
        let body = self.get().await?;
        serde_json::from_slice(&body).map_err(|e| Error::parse(&self.url, e))
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
