//! `nginx`: `stubstatus` from the `stub_status` page, as Metricbeat's nginx module, with
//! `dropped` = accepts − handled and `current` = requests since the previous fetch (all of
//! them on the first). Options: `server_status_path` (default `/server-status`). Default host
//! `http://127.0.0.1`.

use async_trait::async_trait;
use serde_json::json;
use skiff_config::{ConfigErrors, Node};

use crate::http::{self, HttpFetch};
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Nginx;

impl Module for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["stubstatus"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["stubstatus"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["http://127.0.0.1"]
    }

    fn build(
        &self,
        _metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let (http, hostname) = http::status_page(ctx, own, "")?;
        Ok(Box::new(Stub {
            http,
            hostname,
            last_requests: None,
        }))
    }
}

struct Stub {
    http: HttpFetch,
    hostname: String,
    last_requests: Option<u64>,
}

/// `(active, accepts, handled, requests, reading, writing, waiting)` of a stub_status page.
pub fn parse(page: &str) -> Option<[u64; 7]> {
    let mut lines = page.lines();
    let active = lines
        .next()?
        .strip_prefix("Active connections:")?
        .trim()
        .parse()
        .ok()?;
    lines.next()?; // "server accepts handled requests"
    let nums: Vec<u64> = lines
        .next()?
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [accepts, handled, requests] = nums.as_slice() else {
        return None;
    };
    let rww: Vec<u64> = lines
        .next()?
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [reading, writing, waiting] = rww.as_slice() else {
        return None;
    };
    Some([
        active, *accepts, *handled, *requests, *reading, *writing, *waiting,
    ])
}

#[async_trait]
impl Fetcher for Stub {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let body = self.http.get().await?;
        let page = String::from_utf8_lossy(&body);
        let Some(
            [
                active,
                accepts,
                handled,
                requests,
                reading,
                writing,
                waiting,
            ],
        ) = parse(&page)
        else {
            return Err(Error::parse(
                &self.http.url,
                "not an nginx stub_status page: is `server_status_path` right?",
            ));
        };
        let current = requests.saturating_sub(self.last_requests.unwrap_or(0));
        self.last_requests = Some(requests);
        Ok(vec![MetricEvent::from_value(json!({
            "hostname": self.hostname, "active": active, "accepts": accepts, "handled": handled,
            "dropped": accepts.saturating_sub(handled), "requests": requests, "current": current,
            "reading": reading, "writing": writing, "waiting": waiting,
        }))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stub_status_page() {
        let p = "Active connections: 1 \nserver accepts handled requests\n 22 22 10 \nReading: 0 Writing: 1 Waiting: 0 \n";
        assert_eq!(parse(p), Some([1, 22, 22, 10, 0, 1, 0]));
        assert_eq!(parse("<html>"), None);
    }
}
