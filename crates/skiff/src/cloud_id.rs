//! `cloud.id` and `cloud.auth`: Elastic Cloud's connection string, decoded into the
//! Elasticsearch output's hosts and credentials (and `setup.kibana.host`), as Filebeat does.
//!
//! Elastic Cloud hands its users one string instead of URLs: `name:base64(host$es$kibana)`,
//! where `host` is the cloud's domain (maybe with `:port`), and `es`/`kibana` are the
//! deployments' ids (each maybe with its own `:port`); the URLs are `https://<id>.<host>:<port>`,
//! port 443 unless one is given. `cloud.auth: user:pass` fills the output's username and
//! password. The decoding is a few lines of string handling, so it is written here rather than
//! taken from a crate (none decodes Elastic's format).

use base64::Engine as _;
use skiff_config::{ConfigError, Mark, Node, NodeValue};

/// What a `cloud.id` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudId {
    /// The Elasticsearch URL, `https://<es-id>.<host>:<port>`.
    pub elasticsearch: String,
    /// The Kibana URL, `https://<kibana-id>.<host>:<port>`.
    pub kibana: String,
}

/// The default port of Elastic Cloud's endpoints.
const DEFAULT_PORT: &str = "443";

/// Decodes a `cloud.id`. Errors say what is wrong with it in plain words.
pub fn decode(cloud_id: &str) -> Result<CloudId, String> {
    // The part before the last `:` is the deployment's name, a label only.
    let encoded = cloud_id
        .rsplit_once(':')
        .map_or(cloud_id, |(_, e)| e)
        .trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("the part after `name:` is not valid base64 ({e})"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| "the decoded cloud id is not text (UTF-8)".to_string())?;
    let words: Vec<&str> = text.split('$').collect();
    let [host, es, kibana, ..] = words.as_slice() else {
        return Err(format!(
            "expected at least 3 parts separated by `$` (host$elasticsearch-id$kibana-id) in the decoded `{text}`"
        ));
    };
    let (host, port) = split_port(host, DEFAULT_PORT);
    let (es_id, es_port) = split_port(es, port);
    let (kb_id, kb_port) = split_port(kibana, port);
    for part in [host, es_id, kb_id] {
        if part.is_empty() {
            return Err(format!("the decoded `{text}` has an empty part"));
        }
        if let Some(c) = part.chars().find(|c| "#@?/ ".contains(*c)) {
            return Err(format!(
                "the part `{part}` of the decoded cloud id contains `{c}`, which cannot be in a host name"
            ));
        }
    }
    for p in [es_port, kb_port] {
        if p.parse::<u16>().is_err() {
            return Err(format!(
                "the port `{p}` in the decoded `{text}` is not a port number"
            ));
        }
    }
    Ok(CloudId {
        elasticsearch: format!("https://{es_id}.{host}:{es_port}"),
        kibana: format!("https://{kb_id}.{host}:{kb_port}"),
    })
}

/// `word` split at its last `:` into name and port, or `word` with `default`.
fn split_port<'a>(word: &'a str, default: &'a str) -> (&'a str, &'a str) {
    word.rsplit_once(':').unwrap_or((word, default))
}

/// Splits `cloud.auth` at its first `:` into username and password.
pub fn decode_auth(auth: &str) -> Result<(&str, &str), String> {
    auth.split_once(':').ok_or_else(|| {
        "cloud.auth has no `:` to split between username and password (expected `user:password`)"
            .to_string()
    })
}

/// Takes `cloud.*` off `root` and, when `cloud.id` is set, points the Elasticsearch output at
/// it (replacing its `hosts`) and sets its credentials from `cloud.auth`. Returns the Kibana URL
/// for `setup.kibana.host`. As in Filebeat, another enabled output is an error, and so is
/// `cloud.auth` without `cloud.id`.
pub fn apply(root: &mut Node) -> Result<Option<String>, ConfigError> {
    let Some(cloud) = root.remove("cloud") else {
        return Ok(None);
    };
    let text = |key: &str| -> Result<Option<(String, Mark)>, ConfigError> {
        match cloud.get(key) {
            None => Ok(None),
            Some(n) => match &n.value {
                NodeValue::Null => Ok(None),
                NodeValue::String(s) if s.is_empty() => Ok(None),
                NodeValue::String(s) => Ok(Some((s.clone(), n.mark.clone()))),
                other => Err(ConfigError::new(
                    format!("cloud.{key}"),
                    n.mark.clone(),
                    format!("expected text, found {}", other.describe()),
                )),
            },
        }
    };
    let id = text("id")?;
    let auth = text("auth")?;
    for (k, n) in cloud.entries() {
        if k != "id" && k != "auth" {
            return Err(ConfigError::new(
                format!("cloud.{k}"),
                n.mark.clone(),
                format!("unknown key `{k}` (cloud.* takes `id` and `auth`)"),
            )
            .with_suggestion(skiff_config::suggest(k, &["id", "auth"])));
        }
    }
    let Some((id, id_mark)) = id else {
        return match auth {
            Some((_, mark)) => Err(ConfigError::new(
                "cloud.auth",
                mark,
                "cloud.auth is set but cloud.id is empty: set both",
            )),
            None => Ok(None),
        };
    };
    let decoded = decode(&id).map_err(|e| {
        ConfigError::new(
            "cloud.id",
            id_mark.clone(),
            format!("invalid cloud id: {e}"),
        )
    })?;
    if let Some(out) = root.get("output")
        && let Some((name, n)) = out
            .entries()
            .iter()
            .find(|(name, n)| name != "elasticsearch" && n.is_enabled())
    {
        return Err(ConfigError::new(
            format!("output.{name}"),
            n.mark.clone(),
            format!(
                "cloud.id sends to Elasticsearch, but the {name} output is enabled: remove it, or remove cloud.id"
            ),
        ));
    }
    let string = |s: &str, mark: &Mark| Node::new(NodeValue::String(s.to_string()), mark.clone());
    let hosts = Node::new(
        NodeValue::Seq(vec![string(&decoded.elasticsearch, &id_mark)]),
        id_mark.clone(),
    );
    root.insert("output.elasticsearch.hosts", hosts, &id_mark);
    if let Some((auth, mark)) = auth {
        let (user, pass) =
            decode_auth(&auth).map_err(|e| ConfigError::new("cloud.auth", mark.clone(), e))?;
        root.insert("output.elasticsearch.username", string(user, &mark), &mark);
        root.insert("output.elasticsearch.password", string(pass, &mark), &mark);
    }
    Ok(Some(decoded.kibana))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Elastic's own example ids (libbeat's cloudid tests and the Cloud documentation), with
    /// the URLs Filebeat derives from them.
    #[test]
    fn elastic_example_ids_decode_to_the_documented_urls() {
        let us_east = (
            "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443",
            "https://c6c2ca6d042249af0cc7d7a9e9625743.us-east-1.aws.found.io:443",
        );
        let gcp = "us-central1.gcp.cloud.es.io";
        let es = "ac31ebb90241773157043c34fd26fd46";
        let kb = "a4c06230e48c8fce7be88a074a3bb3e0";
        let cases: Vec<(&str, (String, String))> = vec![
            (
                "staging:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==",
                (us_east.0.into(), us_east.1.into()),
            ),
            (
                "dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==",
                (us_east.0.into(), us_east.1.into()),
            ),
            (
                ":dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==",
                (us_east.0.into(), us_east.1.into()),
            ),
            (
                "gcp-cluster:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJDhhMDI4M2FmMDQxZjE5NWY3NzI5YmMwNGM2NmEwZmNlJDBjZDVjZDU2OGVlYmU1M2M4OWViN2NhZTViYWM4YjM3",
                (
                    format!("https://8a0283af041f195f7729bc04c66a0fce.{gcp}:443"),
                    format!("https://0cd5cd568eebe53c89eb7cae5bac8b37.{gcp}:443"),
                ),
            ),
            (
                "custom-port:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvOjkyNDMkYWMzMWViYjkwMjQxNzczMTU3MDQzYzM0ZmQyNmZkNDYkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA=",
                (
                    format!("https://{es}.{gcp}:9243"),
                    format!("https://{kb}.{gcp}:9243"),
                ),
            ),
            (
                "different-es-kb-port:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2OjkyNDMkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA6OTI0NA==",
                (
                    format!("https://{es}.{gcp}:9243"),
                    format!("https://{kb}.{gcp}:9244"),
                ),
            ),
            (
                "only-kb-set:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2JGE0YzA2MjMwZTQ4YzhmY2U3YmU4OGEwNzRhM2JiM2UwOjkyNDQ=",
                (
                    format!("https://{es}.{gcp}:443"),
                    format!("https://{kb}.{gcp}:9244"),
                ),
            ),
            (
                "host-and-kb-set:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvOjkyNDMkYWMzMWViYjkwMjQxNzczMTU3MDQzYzM0ZmQyNmZkNDYkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA6OTI0NA==",
                (
                    format!("https://{es}.{gcp}:9243"),
                    format!("https://{kb}.{gcp}:9244"),
                ),
            ),
            (
                "extra-items:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2JGE0YzA2MjMwZTQ4YzhmY2U3YmU4OGEwNzRhM2JiM2UwJGFub3RoZXJpZCRhbmRhbm90aGVy",
                (
                    format!("https://{es}.{gcp}:443"),
                    format!("https://{kb}.{gcp}:443"),
                ),
            ),
        ];
        for (id, (es_url, kb_url)) in cases {
            let got = decode(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(got.elasticsearch, es_url, "{id}");
            assert_eq!(got.kibana, kb_url, "{id}");
        }
    }

    #[test]
    fn malformed_ids_say_what_is_wrong() {
        let garbage = decode("staging:garbagedXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==").unwrap_err();
        assert!(garbage.contains("not valid base64"), "{garbage}");
        let two = decode(
            "dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJDhhMDI4M2FmMDQxZjE5NWY3NzI5YmMwNGM2NmEwZg==",
        )
        .unwrap_err();
        assert!(two.contains("at least 3 parts"), "{two}");
        // `evil.com/x$a$b`: a path in the host would change where events go.
        let slash = decode("x:ZXZpbC5jb20veCRhJGI=").unwrap_err();
        assert!(slash.contains("contains `/`"), "{slash}");
        // `h:99999$a$b`: not a port.
        let port = decode("x:aDo5OTk5OSRhJGI=").unwrap_err();
        assert!(port.contains("not a port number"), "{port}");
        assert!(decode("blah").is_err());
    }

    fn root(yaml: &str) -> Node {
        skiff_config::parse_str(yaml, Some("t.yml")).unwrap()
    }

    const REALISTIC: &str = "cloudidtest:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyQyNDlmM2FmMWY0ZWVlMjRhODRlM2I0MDFlNjhhMWIyYSRkNGFjNzU1OWQ0Njc0YjdjOTFhYmUxMDg1NmQ4NDMwNA==";

    #[test]
    fn cloud_id_and_auth_replace_the_elasticsearch_hosts_and_credentials() {
        let mut r = root(&format!(
            "cloud.id: \"{REALISTIC}\"\ncloud.auth: \"elastic:chan:geme\"\noutput.elasticsearch.hosts: [localhost:9200, test]\n"
        ));
        let kibana = apply(&mut r).unwrap();
        assert_eq!(
            kibana.as_deref(),
            Some("https://d4ac7559d4674b7c91abe10856d84304.us-east-1.aws.found.io:443")
        );
        assert_eq!(
            r.get("output.elasticsearch").unwrap().to_json(),
            serde_json::json!({
                "hosts": ["https://249f3af1f4eee24a84e3b401e68a1b2a.us-east-1.aws.found.io:443"],
                "username": "elastic",
                "password": "chan:geme",
            })
        );
        assert!(r.get("cloud").is_none());
        // No output at all: cloud.id enables the Elasticsearch output.
        let mut r = root(&format!("cloud.id: \"{REALISTIC}\"\n"));
        apply(&mut r).unwrap();
        assert!(r.get("output.elasticsearch.hosts").is_some());
        assert!(r.get("output.elasticsearch.username").is_none());
        // Nothing to do without cloud.*.
        let mut r = root("output.console: {}\n");
        assert_eq!(apply(&mut r).unwrap(), None);
    }

    #[test]
    fn cloud_misuse_is_a_located_error() {
        let err = |yaml: &str| apply(&mut root(yaml)).unwrap_err().to_string();
        let e = err("cloud.auth: elastic:changeme\n");
        assert!(
            e.contains("cloud.id is empty") && e.contains("t.yml:1"),
            "{e}"
        );
        let e = err("cloud.id: blah\n");
        assert!(e.contains("cloud.id: invalid cloud id"), "{e}");
        let e = err(&format!("cloud.id: \"{REALISTIC}\"\ncloud.auth: blah\n"));
        assert!(e.contains("no `:`") && e.contains("t.yml:2"), "{e}");
        let e = err(&format!(
            "cloud.id: \"{REALISTIC}\"\noutput.logstash.hosts: [localhost:5044]\n"
        ));
        assert!(e.contains("the logstash output is enabled"), "{e}");
        let e = err(&format!("cloud.id: \"{REALISTIC}\"\ncloud.ath: x\n"));
        assert!(e.contains("did you mean `auth`"), "{e}");
        // A disabled other output is fine.
        let mut r = root(&format!(
            "cloud.id: \"{REALISTIC}\"\noutput.logstash: {{enabled: false}}\n"
        ));
        assert!(apply(&mut r).is_ok());
    }
}
