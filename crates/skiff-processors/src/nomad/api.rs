//! The parts of Nomad's HTTP API the `add_nomad_metadata` processor reads, and the metadata it
//! makes of an allocation (Filebeat's fields).
//!
//! Endpoints (Nomad's API documentation): `GET /v1/agent/self` (the local node's name when
//! `node` is not set), `GET /v1/nodes` (a node's ID by its name), `GET
//! /v1/node/:node_id/allocations` (`scope: node`: the node's allocations, with their jobs),
//! `GET /v1/allocations` and `GET /v1/allocation/:alloc_id` (`scope: global`: every
//! allocation, then each new or changed one in full). `namespace` and `region` go as query
//! parameters, `secret_id` as the `X-Nomad-Token` header.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use skiff_event::{Map, Value};

/// Answers larger than this are refused (a cluster's allocation list is far smaller).
const MAX_BODY: usize = 64 << 20;

/// What goes wrong talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request did not complete.
    #[error("GET {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The answer is not what the API documents.
    #[error("GET {url}: unexpected answer: {message}")]
    Decode {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// `node` names no node of the cluster.
    #[error("no Nomad node named `{0}`")]
    NoNode(String),
}

/// An allocation as the API returns it (the fields used; the rest is ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Allocation {
    /// `ID`.
    #[serde(rename = "ID")]
    pub id: String,
    /// `Name` (`job.group[index]`).
    #[serde(default)]
    pub name: String,
    /// `Namespace`.
    #[serde(default)]
    pub namespace: String,
    /// `ClientStatus` (running, complete, failed, ...).
    #[serde(default)]
    pub client_status: String,
    /// `ModifyIndex`: changes when the allocation does.
    #[serde(default)]
    pub modify_index: u64,
    /// `Job`: in full answers only.
    #[serde(default)]
    pub job: Option<Job>,
}

/// The job of an allocation.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Job {
    /// `Name`.
    #[serde(default)]
    pub name: String,
    /// `Type` (service, batch, system).
    #[serde(default)]
    pub r#type: String,
    /// `Region`.
    #[serde(default)]
    pub region: String,
    /// `Datacenters`.
    #[serde(default)]
    pub datacenters: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeStub {
    #[serde(rename = "ID")]
    id: String,
    name: String,
}

/// Filebeat's metadata of an allocation, the value of `nomad`.
pub fn metadata(a: &Allocation) -> Map {
    let job = a.job.clone().unwrap_or(Job {
        name: String::new(),
        r#type: String::new(),
        region: String::new(),
        datacenters: Vec::new(),
    });
    let v = json!({
        "allocation": {"id": a.id, "name": a.name, "status": a.client_status},
        "job": {"name": job.name, "type": job.r#type},
        "namespace": a.namespace,
        "datacenter": job.datacenters,
        "region": job.region,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A client of one agent.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    query: Vec<(&'static str, String)>,
}

impl Client {
    /// A client of the agent at `address` (`http://host:4646`).
    pub fn new(
        address: &str,
        token: Option<String>,
        namespace: Option<String>,
        region: Option<String>,
        timeout: Duration,
    ) -> Result<Client, String> {
        let tls = skiff_tls::client_config(&skiff_tls::SslConfig::default())
            .map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(timeout)
            .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let mut query = Vec::new();
        if let Some(n) = namespace {
            query.push(("namespace", n));
        }
        if let Some(r) = region {
            query.push(("region", r));
        }
        Ok(Client {
            http,
            base: address.trim_end_matches('/').to_owned(),
            token,
            query,
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let http = |e: reqwest::Error| ApiError::Http {
            url: url.clone(),
            message: e.to_string(),
        };
        let mut req = self.http.get(&url).query(&self.query);
        if let Some(t) = &self.token {
            req = req.header("X-Nomad-Token", t);
        }
        let mut resp = req.send().await.map_err(http)?;
        if !resp.status().is_success() {
            return Err(ApiError::Http {
                url: url.clone(),
                message: format!("HTTP {}", resp.status()),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ApiError::Decode {
                    url,
                    message: format!("larger than {MAX_BODY} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::Decode {
            url,
            message: e.to_string(),
        })
    }

    /// The local agent's node name (`/v1/agent/self`: `config.NodeName`, else
    /// `member.Name`).
    pub async fn local_node_name(&self) -> Result<String, ApiError> {
        let v: Value = self.get("/v1/agent/self").await?;
        v.pointer("/config/NodeName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| v.pointer("/member/Name").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Decode {
                url: format!("{}/v1/agent/self", self.base),
                message: "no node name".into(),
            })
    }

    /// The ID of the node named (or with the ID) `node`.
    pub async fn node_id(&self, node: &str) -> Result<String, ApiError> {
        let nodes: Vec<NodeStub> = self.get("/v1/nodes").await?;
        nodes
            .into_iter()
            .find(|n| n.name == node || n.id == node)
            .map(|n| n.id)
            .ok_or_else(|| ApiError::NoNode(node.to_owned()))
    }

    /// The allocations of a node, in full.
    pub async fn node_allocations(&self, node_id: &str) -> Result<Vec<Allocation>, ApiError> {
        self.get(&format!("/v1/node/{node_id}/allocations")).await
    }

    /// Every allocation (stubs, without their jobs).
    pub async fn allocations(&self) -> Result<Vec<Allocation>, ApiError> {
        self.get("/v1/allocations").await
    }

    /// One allocation in full.
    pub async fn allocation(&self, id: &str) -> Result<Allocation, ApiError> {
        self.get(&format!("/v1/allocation/{id}")).await
    }

    /// The current allocations of the scope, in full; `known` (by ID, with their
    /// `ModifyIndex`) are not asked for again in `global` scope.
    pub async fn current(
        &self,
        node_id: Option<&str>,
        known: &HashMap<String, Allocation>,
    ) -> Result<Vec<Allocation>, ApiError> {
        if let Some(node) = node_id {
            return self.node_allocations(node).await;
        }
        let mut out = Vec::new();
        for stub in self.allocations().await? {
            match known.get(&stub.id) {
                Some(k) if k.modify_index == stub.modify_index && k.job.is_some() => {
                    out.push(k.clone());
                }
                _ => out.push(self.allocation(&stub.id).await?),
            }
        }
        Ok(out)
    }
}
