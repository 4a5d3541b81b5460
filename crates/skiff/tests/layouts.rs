//! The filebeat.yml layouts of issue 11 (`tests/data/layouts/`, described in its README): 6
//! with `filebeat.autodiscover` (5 Docker, 1 Kubernetes), 8 with Filebeat modules and 2 with
//! `cloud.id`/`cloud.auth`, written the way users write them. For every layout, on the real
//! binary: `skiff test config` accepts it and warns only about what the layout does not rely
//! on, then skiff RUNS it, log lines are fed where the layout reads, and the events must arrive
//! parsed as the layout means, each line exactly once (or not at all where the layout drops it).
//!
//! One table ([`LAYOUTS`]) says per layout what runs around skiff, what to feed and what to
//! expect; one function ([`run_layout`]) does the rest.
//!
//! How a layout is made runnable here, and nothing more:
//! - Every `/var/...` path in its files is moved under the sandbox (`<sandbox>/var/...`): a test
//!   cannot write `/var/log`. Paths the layout leaves to the module's defaults are given with
//!   `-E` (15).
//! - Servers are the ones the other tests use: the Docker Engine API stand-in
//!   (`docker_standin`, its containers folder at `<sandbox>/var/lib/docker/containers`, its
//!   socket linked at `<sandbox>/var/run/docker.sock`), the Kubernetes API server stand-in
//!   (`skiff_kubernetes::stand_in`), the Elasticsearch stand-in (`es_standin`, with the
//!   layout's credentials; over TLS for `cloud.id`), and a real `redis-server`. All stand-ins
//!   are written from their APIs' documentation: no Docker daemon, cluster or Elasticsearch can
//!   run on the test machines.
//! - The Logstash output sends to a second skiff with a `beats` input (the Lumberjack server
//!   side), which writes what it receives to a file; the Kafka output to a real Kafka-protocol
//!   broker (`tansu`, `skiff-kafka-testkit`), read back by a consumer.
//! - Addresses come in through `-E` (the provider's `host`, the output's `hosts`, `cloud.id`)
//!   or through the environment variables the layout itself reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod docker_standin;
mod es_standin;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;
use docker_standin::DockerStandIn;
use es_standin::EsStandIn;
use serde_json::{Value, json};

/// Where a layout's events end up, and how the test reads them.
#[derive(Clone, Copy)]
enum Out {
    /// The layout's own `output.file`, writing to this folder of the sandbox.
    OwnFile(&'static str),
    /// The Elasticsearch stand-in, requiring these credentials (`user`, `password`) or this
    /// API key (`id:key`).
    Es {
        user: &'static str,
        password: &'static str,
        api_key: Option<&'static str>,
    },
    /// `cloud.id`: the Elasticsearch stand-in over TLS, requiring these credentials.
    Cloud {
        user: &'static str,
        password: &'static str,
    },
    /// A real `redis-server`, with this password if any.
    Redis { password: Option<&'static str> },
    /// A Kafka-protocol broker (`tansu`) with these topics, read back by a consumer.
    Kafka { topics: &'static [&'static str] },
    /// A Lumberjack (Beats protocol) server as Logstash's beats input: a second skiff with a
    /// `beats` input, writing what it receives to `<sandbox>/out/`.
    Logstash,
}

/// A container of the Docker stand-in, running when skiff starts.
struct Container {
    id: &'static str,
    name: &'static str,
    image: &'static str,
    labels: &'static [(&'static str, &'static str)],
    stdout: &'static [&'static str],
    stderr: &'static [&'static str],
}

/// A pod of the Kubernetes stand-in, on node `node-a`, with one running container `app`
/// whose log (CRI format, stdout) holds `lines`.
struct Pod {
    namespace: &'static str,
    name: &'static str,
    container_id: &'static str,
    image: &'static str,
    annotations: &'static [(&'static str, &'static str)],
    lines: &'static [&'static str],
}

/// What runs around skiff besides its output.
enum Around {
    Nothing,
    Docker(&'static [Container]),
    Kubernetes(&'static [Pod]),
}

/// One event that must arrive: the one that carries `line` ([`carries`]), with `fields` (JSON pointer, value: JSON if it parses as
/// JSON, else text). The pointer `/@where` is the file, index or key the event was read from.
struct Expect {
    line: &'static str,
    fields: &'static [(&'static str, &'static str)],
}

struct Layout {
    /// The folder under `tests/data/layouts/` (its `filebeat.yml`, maybe `modules.d/`).
    dir: &'static str,
    around: Around,
    out: Out,
    /// Environment variables the layout reads (placeholders as in `overrides`).
    env: &'static [(&'static str, &'static str)],
    /// `-E` flags; `{dir}` is the sandbox, `{docker}` the Docker stand-in's address, `{es}` the
    /// Elasticsearch stand-in's URL, `{redis}` the redis-server's `host:port`, `{logstash}` the
    /// Lumberjack receiver's, `{kafka}` the broker's, `{msi}` the `match_source_index` of a container's folder under
    /// the sandbox.
    overrides: &'static [&'static str],
    /// Files written before skiff starts (path under the sandbox, lines).
    files: &'static [(&'static str, &'static [&'static str])],
    /// How many events arrive in all.
    events: usize,
    expect: &'static [Expect],
    /// Lines that must not arrive (dropped, not matched, disabled). Each is fed before a line
    /// of the same file or container that does arrive, so it would have arrived by then.
    absent: &'static [&'static str],
    /// What `skiff test config` may warn about (substrings): only things the layout does not
    /// rely on here (dashboards; `add_cloud_metadata`, which skiff lacks: the test machine is
    /// no cloud instance, see the README). Any other warning fails the test.
    warnings: &'static [&'static str],
}

// Container ids (64 hex characters, as Docker and containerd make them).
const NGINX_ID: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const REDIS_ID: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
const OTHER_ID: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
const FOURTH_ID: &str = "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4";

// Log lines, in the formats of the software the modules parse.
const NGINX_200: &str = "89.160.20.156 - - [06/Dec/2026:14:00:00 +0000] \"GET /shop HTTP/1.1\" 200 612 \"-\" \"curl/8.5.0\"";
const NGINX_404: &str = "10.1.2.3 - alice [06/Dec/2026:14:00:01 +0000] \"GET /missing HTTP/1.1\" 404 153 \"-\" \"Mozilla/5.0\"";
const NGINX_ERROR: &str = "2026/12/06 14:00:02 [error] 31#31: *7 open() \"/usr/share/nginx/html/favicon.ico\" failed (2: No such file or directory), client: 10.1.2.3, server: localhost, request: \"GET /favicon.ico HTTP/1.1\", host: \"shop.example\"";
const REDIS_LOG: &str = "1:M 06 Dec 2026 14:00:00.000 * Ready to accept connections tcp";
const SYSLOG: &str = "Dec  6 14:00:01 web-1 CRON[1234]: (root) CMD (run-parts /etc/cron.hourly)";
const AUTH: &str = "Dec  6 14:00:02 web-1 sshd[2345]: Accepted publickey for deploy from 192.0.2.10 port 52311 ssh2: RSA SHA256:Zm9vYmFyYmF6";
const APACHE_ACCESS: &str = "192.0.2.44 - - [06/Dec/2026:14:00:03 +0000] \"GET /index.html HTTP/1.1\" 200 1043 \"-\" \"Mozilla/5.0\"";
const APACHE_ERROR: &str = "[Sun Dec 06 14:00:04.123456 2026] [core:error] [pid 1234:tid 5678] [client 192.0.2.44:50000] AH00126: Invalid URI in request GET /../x HTTP/1.1";
const MYSQL_ERROR: &str = "2026-12-06T14:00:05.123456Z 0 [Warning] [MY-010068] [Server] CA certificate ca.pem is self signed.";
const POSTGRES: &str =
    "2026-12-06 14:00:06.123 UTC [4321] LOG:  database system is ready to accept connections";
const HAPROXY: &str = "Dec  6 14:00:07 lb-1 haproxy[3210]: 192.0.2.5:40000 [06/Dec/2026:14:00:07.123] http-in~ api/web1 0/0/1/2/3 200 512 - - ---- 1/1/0/0/0 0/0 \"GET /api/orders HTTP/1.1\"";
const TRAEFIK: &str = "192.0.2.9 - - [06/Dec/2026:14:00:08 +0000] \"GET /whoami HTTP/1.1\" 200 450 \"-\" \"curl/8.5.0\" 17 \"whoami@docker\" \"http://172.18.0.3:80\" 3ms";

/// The fields every nginx access event has.
const NGINX_200_FIELDS: &[(&str, &str)] = &[
    ("/event/dataset", "nginx.access"),
    ("/event/module", "nginx"),
    ("/http/response/status_code", "200"),
    ("/url/original", "/shop"),
    ("/source/address", "89.160.20.156"),
];

const LAYOUTS: &[Layout] = &[
    Layout {
        dir: "01-docker-templates-nginx-redis",
        around: Around::Docker(&[
            Container {
                id: NGINX_ID,
                name: "shop-web",
                image: "nginx:1.25",
                labels: &[],
                stdout: &[NGINX_200],
                stderr: &[NGINX_ERROR],
            },
            Container {
                id: REDIS_ID,
                name: "shop-cache",
                image: "redis:7.2",
                labels: &[],
                stdout: &[REDIS_LOG],
                stderr: &[],
            },
            Container {
                id: OTHER_ID,
                name: "cron",
                image: "busybox:1.36",
                labels: &[],
                stdout: &["busybox: no template matches me"],
                stderr: &[],
            },
        ]),
        out: Out::Es {
            user: "elastic",
            password: "changeme",
            api_key: None,
        },
        env: &[("ES_PASSWORD", "changeme")],
        overrides: &[
            "filebeat.autodiscover.providers.0.host={docker}",
            "output.elasticsearch.hosts=[{es}]",
        ],
        files: &[],
        events: 3,
        expect: &[
            Expect {
                line: "GET /shop",
                fields: NGINX_200_FIELDS,
            },
            Expect {
                line: "favicon.ico",
                fields: &[
                    ("/event/dataset", "nginx.error"),
                    ("/log/level", "error"),
                    ("/container/name", "shop-web"),
                ],
            },
            Expect {
                line: "Ready to accept connections",
                fields: &[
                    ("/event/dataset", "redis.log"),
                    ("/redis/log/role", "master"),
                    ("/container/image/name", "redis:7.2"),
                ],
            },
        ],
        absent: &["busybox: no template matches me"],
        warnings: &["setup.kibana"],
    },
    Layout {
        dir: "02-docker-hints-default-config",
        around: Around::Docker(&[
            Container {
                id: NGINX_ID,
                name: "front",
                image: "nginx:1.25",
                labels: &[
                    ("co.elastic.logs/module", "nginx"),
                    ("co.elastic.logs/fileset.stdout", "access"),
                    ("co.elastic.logs/fileset.stderr", "error"),
                ],
                stdout: &[NGINX_404],
                stderr: &[],
            },
            Container {
                id: OTHER_ID,
                name: "billing",
                image: "example/billing:2.3",
                labels: &[("com.example.team", "payments")],
                stdout: &["   ", "billing started on :8080"],
                stderr: &[],
            },
            Container {
                id: REDIS_ID,
                name: "sidecar",
                image: "example/sidecar:1",
                labels: &[("co.elastic.logs/enabled", "false")],
                stdout: &["sidecar: hints say not me"],
                stderr: &[],
            },
        ]),
        out: Out::Logstash,
        env: &[],
        overrides: &[
            "output.logstash.hosts=[{logstash}]",
            "filebeat.autodiscover.providers.0.host={docker}",
            "processors.0.add_docker_metadata.match_source_index={msi}",
        ],
        files: &[],
        events: 2,
        expect: &[
            Expect {
                line: "GET /missing",
                fields: &[
                    ("/event/dataset", "nginx.access"),
                    ("/http/response/status_code", "404"),
                    ("/user/name", "alice"),
                    ("/container/name", "front"),
                ],
            },
            Expect {
                line: "billing started",
                fields: &[
                    ("/container/name", "billing"),
                    ("/container/image/name", "example/billing:2.3"),
                    ("/container/labels/com_example_team", "payments"),
                    ("/stream", "stdout"),
                ],
            },
        ],
        absent: &["sidecar: hints say not me"],
        warnings: &["add_cloud_metadata"],
    },
    Layout {
        dir: "03-docker-labels-json-app",
        around: Around::Docker(&[
            Container {
                id: NGINX_ID,
                name: "orders-api",
                image: "example/orders:4.1",
                labels: &[("app.kind", "api")],
                stdout: &[
                    r#"{"level":"info","path":"/healthz","status":200}"#,
                    r#"{"level":"info","path":"/orders","status":201,"order":{"id":"o-77"}}"#,
                ],
                stderr: &[],
            },
            Container {
                id: OTHER_ID,
                name: "postgres",
                image: "postgres:16",
                labels: &[("app.kind", "db")],
                stdout: &["postgres: not an api"],
                stderr: &[],
            },
        ]),
        out: Out::Kafka {
            topics: &["logs-orders-api"],
        },
        env: &[],
        overrides: &[
            "filebeat.autodiscover.providers.0.host={docker}",
            "output.kafka.hosts=[{kafka}]",
        ],
        files: &[],
        events: 1,
        expect: &[Expect {
            line: "/orders",
            fields: &[
                ("/app/status", "201"),
                ("/app/order/id", "o-77"),
                ("/app/level", "info"),
                ("/service", "orders-api"),
                ("/container/labels/app_kind", "api"),
                ("/@where", "logs-orders-api"),
            ],
        }],
        absent: &["/healthz", "postgres: not an api"],
        warnings: &[],
    },
    Layout {
        dir: "04-docker-all-containers-redis",
        around: Around::Docker(&[
            Container {
                id: NGINX_ID,
                name: "web",
                image: "example/web:1",
                labels: &[],
                stdout: &["DEBUG cache warm", "INFO listening on :80"],
                stderr: &[],
            },
            Container {
                id: OTHER_ID,
                name: "filebeat",
                image: "docker.elastic.co/beats/filebeat:8.15.0",
                labels: &[],
                stdout: &["filebeat: my own log"],
                stderr: &[],
            },
            Container {
                id: FOURTH_ID,
                name: "worker",
                image: "example/worker:1",
                labels: &[],
                stdout: &["INFO job 42 done"],
                stderr: &[],
            },
        ]),
        out: Out::Redis { password: None },
        env: &[],
        overrides: &[
            "filebeat.autodiscover.providers.0.host={docker}",
            "output.redis.hosts=[{redis}]",
        ],
        files: &[],
        events: 2,
        expect: &[
            Expect {
                line: "INFO listening on :80",
                fields: &[
                    ("/tags", r#"["docker","web"]"#),
                    ("/container/id", NGINX_ID),
                    ("/@where", "filebeat"),
                ],
            },
            Expect {
                line: "INFO job 42 done",
                fields: &[("/tags", r#"["docker","worker"]"#)],
            },
        ],
        absent: &["DEBUG cache warm", "filebeat: my own log"],
        warnings: &[],
    },
    Layout {
        dir: "05-docker-hints-opt-in",
        around: Around::Docker(&[
            Container {
                id: NGINX_ID,
                name: "edge",
                image: "nginx:1.25-alpine",
                labels: &[
                    ("co.elastic.logs/enabled", "true"),
                    ("co.elastic.logs/module", "nginx"),
                    ("co.elastic.logs/fileset.stdout", "access"),
                    ("co.elastic.logs/fileset.stderr", "error"),
                ],
                stdout: &[NGINX_200],
                stderr: &[NGINX_ERROR],
            },
            Container {
                id: OTHER_ID,
                name: "unlabelled",
                image: "example/app:1",
                labels: &[],
                stdout: &["unlabelled: nobody asked for me"],
                stderr: &[],
            },
        ]),
        out: Out::Es {
            user: "filebeat_writer",
            password: "w-Secret-9",
            api_key: None,
        },
        env: &[("ES_PASSWORD", "w-Secret-9")],
        overrides: &[
            "filebeat.autodiscover.providers.0.host={docker}",
            "output.elasticsearch.hosts=[{es}]",
            // The provider's default paths are the machine's own /var/lib/docker.
            "filebeat.autodiscover.providers.0.hints.default_config.paths=['{dir}/var/lib/docker/containers/${data.container.id}/*-json.log']",
        ],
        files: &[],
        events: 2,
        expect: &[
            Expect {
                line: "GET /shop",
                fields: &[
                    ("/event/dataset", "nginx.access"),
                    ("/container/name", "edge"),
                    ("/@where", "docker-logs-"),
                ],
            },
            Expect {
                line: "favicon.ico",
                fields: &[("/event/dataset", "nginx.error"), ("/log/level", "error")],
            },
        ],
        absent: &["unlabelled: nobody asked for me"],
        warnings: &[],
    },
    Layout {
        dir: "06-kubernetes-node-hints",
        around: Around::Kubernetes(&[
            Pod {
                namespace: "shop",
                name: "web-7d9f",
                container_id: NGINX_ID,
                image: "nginx:1.25",
                annotations: &[
                    ("co.elastic.logs/module", "nginx"),
                    ("co.elastic.logs/fileset.stdout", "access"),
                ],
                lines: &[NGINX_200],
            },
            Pod {
                namespace: "kube-system",
                name: "coredns-5d78",
                container_id: OTHER_ID,
                image: "coredns:1.11",
                annotations: &[],
                lines: &["[INFO] coredns: dropped by the layout"],
            },
            Pod {
                namespace: "shop",
                name: "worker-0",
                container_id: REDIS_ID,
                image: "example/worker:1",
                annotations: &[],
                lines: &["worker-0: processed batch 9"],
            },
        ]),
        out: Out::Es {
            user: "elastic",
            password: "k8s-pw",
            api_key: None,
        },
        env: &[
            ("NODE_NAME", "node-a"),
            ("ELASTICSEARCH_HOST", "127.0.0.1"),
            ("ELASTICSEARCH_PORT", "{es_port}"),
            ("ELASTICSEARCH_USERNAME", "elastic"),
            ("ELASTICSEARCH_PASSWORD", "k8s-pw"),
        ],
        overrides: &[],
        files: &[],
        events: 2,
        expect: &[
            Expect {
                line: "GET /shop",
                fields: &[
                    ("/event/dataset", "nginx.access"),
                    ("/http/response/status_code", "200"),
                    ("/kubernetes/namespace", "shop"),
                    ("/kubernetes/pod/name", "web-7d9f"),
                    ("/kubernetes/node/name", "node-a"),
                    ("/kubernetes/container/name", "app"),
                    ("/kubernetes/labels/app", "web-7d9f"),
                    ("/kubernetes/namespace_labels/team", "shop-team"),
                ],
            },
            Expect {
                line: "processed batch 9",
                fields: &[
                    ("/kubernetes/pod/name", "worker-0"),
                    ("/container/id", REDIS_ID),
                ],
            },
        ],
        absent: &["coredns: dropped by the layout"],
        warnings: &[],
    },
    Layout {
        dir: "07-modules-inline-nginx-es",
        around: Around::Nothing,
        out: Out::Es {
            user: "elastic",
            password: "changeme",
            api_key: None,
        },
        env: &[("ES_PASSWORD", "changeme")],
        overrides: &["output.elasticsearch.hosts=[{es}]"],
        files: &[
            ("var/log/nginx/access.log", &[NGINX_200, NGINX_404]),
            ("var/log/nginx/error.log", &[NGINX_ERROR]),
        ],
        events: 3,
        expect: &[
            Expect {
                line: "GET /shop",
                fields: NGINX_200_FIELDS,
            },
            Expect {
                line: "GET /missing",
                fields: &[
                    ("/http/response/status_code", "404"),
                    ("/event/outcome", "failure"),
                    ("/user/name", "alice"),
                    ("/@where", "filebeat"),
                ],
            },
            Expect {
                line: "favicon.ico",
                fields: &[
                    ("/event/dataset", "nginx.error"),
                    ("/nginx/error/connection_id", "7"),
                ],
            },
        ],
        absent: &[],
        warnings: &[],
    },
    Layout {
        dir: "08-modules-d-system-logstash",
        around: Around::Nothing,
        out: Out::Logstash,
        env: &[],
        overrides: &["output.logstash.hosts=[{logstash}]"],
        files: &[
            ("var/log/syslog", &[SYSLOG]),
            ("var/log/auth.log", &[AUTH]),
            // The nginx module's default path: its modules.d file is disabled.
            ("var/log/nginx/access.log", &[NGINX_200]),
        ],
        events: 2,
        expect: &[
            Expect {
                line: "run-parts /etc/cron.hourly",
                fields: &[
                    ("/event/dataset", "system.syslog"),
                    ("/process/name", "CRON"),
                    ("/process/pid", "1234"),
                    ("/host/hostname", "web-1"),
                ],
            },
            Expect {
                line: "Accepted publickey",
                fields: &[
                    ("/event/dataset", "system.auth"),
                    ("/user/name", "deploy"),
                    ("/source/ip", "192.0.2.10"),
                    ("/system/auth/ssh/event", "Accepted"),
                ],
            },
        ],
        absent: &["GET /shop"],
        warnings: &["setup.kibana", "add_cloud_metadata"],
    },
    Layout {
        dir: "09-modules-d-reload-apache-mysql-kafka",
        around: Around::Nothing,
        out: Out::Kafka {
            topics: &["apache-logs", "mysql-logs"],
        },
        env: &[],
        overrides: &["output.kafka.hosts=[{kafka}]"],
        files: &[
            ("var/log/apache2/access.log", &[APACHE_ACCESS]),
            ("var/log/apache2/error.log", &[APACHE_ERROR]),
            ("var/log/mysql/error.log", &[MYSQL_ERROR]),
        ],
        events: 3,
        expect: &[
            Expect {
                line: "GET /index.html",
                fields: &[
                    ("/event/dataset", "apache.access"),
                    ("/http/response/status_code", "200"),
                    ("/fields/env", "production"),
                    ("/fields/dc", "eu-west"),
                    ("/@where", "apache-logs"),
                ],
            },
            Expect {
                line: "AH00126",
                fields: &[("/event/dataset", "apache.error"), ("/log/level", "error")],
            },
            Expect {
                line: "CA certificate ca.pem",
                fields: &[
                    ("/event/dataset", "mysql.error"),
                    ("/log/level", "Warning"),
                    ("/@where", "mysql-logs"),
                ],
            },
        ],
        absent: &[],
        warnings: &[],
    },
    Layout {
        dir: "10-modules-inline-postgresql-redis",
        around: Around::Nothing,
        out: Out::Redis {
            password: Some("r3dis-pw"),
        },
        env: &[("REDIS_PASSWORD", "r3dis-pw")],
        overrides: &["output.redis.hosts=[{redis}]"],
        files: &[
            ("var/log/postgresql/postgresql-16-main.log", &[POSTGRES]),
            ("var/log/redis/redis-server.log", &[REDIS_LOG]),
        ],
        events: 2,
        expect: &[
            Expect {
                line: "ready to accept connections",
                fields: &[
                    ("/event/dataset", "postgresql.log"),
                    ("/process/pid", "4321"),
                    ("/@where", "filebeat-postgresql"),
                    ("/tags", r#"["database"]"#),
                    ("/agent/name", "db-host-01"),
                ],
            },
            Expect {
                line: "Ready to accept connections",
                fields: &[
                    ("/event/dataset", "redis.log"),
                    ("/@where", "filebeat-redis"),
                ],
            },
        ],
        absent: &[],
        warnings: &[],
    },
    Layout {
        dir: "11-modules-haproxy-file",
        around: Around::Nothing,
        out: Out::OwnFile("var/log/filebeat-out"),
        env: &[],
        overrides: &[],
        files: &[("var/log/haproxy.log", &[HAPROXY])],
        events: 1,
        expect: &[Expect {
            line: "GET /api/orders",
            fields: &[
                ("/event/dataset", "haproxy.log"),
                ("/http/response/status_code", "200"),
                ("/haproxy/frontend_name", "http-in~"),
                ("/haproxy/backend_name", "api"),
                ("/@where", "haproxy"),
            ],
        }],
        absent: &[],
        warnings: &[],
    },
    Layout {
        dir: "12-modules-d-traefik-nginx-es",
        around: Around::Nothing,
        out: Out::Es {
            user: "",
            password: "",
            api_key: Some("edge-shipper:Sx7Kq2"),
        },
        env: &[("ES_API_KEY", "edge-shipper:Sx7Kq2")],
        overrides: &["output.elasticsearch.hosts=[{es}]"],
        files: &[
            ("var/log/traefik/access.log", &[TRAEFIK]),
            ("var/log/nginx/static-access.log", &[NGINX_404]),
        ],
        events: 2,
        expect: &[
            Expect {
                line: "GET /whoami",
                fields: &[
                    ("/event/dataset", "traefik.access"),
                    ("/http/response/status_code", "200"),
                    ("/@where", "edge-traefik-"),
                ],
            },
            Expect {
                line: "GET /missing",
                fields: &[
                    ("/event/dataset", "nginx.access"),
                    ("/tags", r#"["static"]"#),
                    ("/@where", "edge-nginx-"),
                ],
            },
        ],
        absent: &[],
        warnings: &[],
    },
    Layout {
        dir: "13-modules-and-inputs-logstash",
        around: Around::Nothing,
        out: Out::Logstash,
        env: &[],
        overrides: &["output.logstash.hosts=[{logstash}]"],
        files: &[
            (
                "var/log/myapp/app.log",
                &[
                    "2026-12-06 14:00:09 ERROR payment failed",
                    "java.lang.IllegalStateException: card declined",
                    "    at com.example.Pay.run(Pay.java:42)",
                    "2026-12-06 14:00:10 INFO retrying",
                ],
            ),
            ("var/log/messages", &[SYSLOG]),
            ("var/log/secure", &[AUTH]),
            ("var/log/nginx/access.log", &[NGINX_200]),
        ],
        events: 5,
        expect: &[
            Expect {
                line: "payment failed",
                fields: &[
                    (
                        "/message",
                        "2026-12-06 14:00:09 ERROR payment failed\njava.lang.IllegalStateException: card declined\n    at com.example.Pay.run(Pay.java:42)",
                    ),
                    ("/fields/app", "myapp"),
                ],
            },
            Expect {
                line: "run-parts /etc/cron.hourly",
                fields: &[("/event/dataset", "system.syslog")],
            },
            Expect {
                line: "Accepted publickey",
                fields: &[("/event/dataset", "system.auth")],
            },
            Expect {
                line: "GET /shop",
                fields: NGINX_200_FIELDS,
            },
        ],
        absent: &[],
        warnings: &["add_cloud_metadata"],
    },
    Layout {
        dir: "14-modules-d-many-kafka",
        around: Around::Nothing,
        out: Out::Kafka {
            topics: &["filebeat", "web-logs", "db-logs"],
        },
        env: &[],
        overrides: &["output.kafka.hosts=[{kafka}]"],
        files: &[
            ("var/log/nginx/access.log", &[NGINX_200]),
            ("var/log/nginx/error.log", &[NGINX_ERROR]),
            ("var/log/mysql/error.log", &[MYSQL_ERROR]),
            ("var/log/redis/redis.log", &[REDIS_LOG]),
            // apache.yml.disabled names this file: nothing reads it.
            ("var/log/apache2/access.log", &[APACHE_ACCESS]),
        ],
        events: 4,
        expect: &[
            Expect {
                line: "GET /shop",
                fields: NGINX_200_FIELDS,
            },
            Expect {
                line: "favicon.ico",
                fields: &[("/event/dataset", "nginx.error"), ("/@where", "web-logs")],
            },
            Expect {
                line: "CA certificate ca.pem",
                fields: &[("/event/dataset", "mysql.error"), ("/@where", "db-logs")],
            },
            Expect {
                line: "Ready to accept connections",
                fields: &[("/event/dataset", "redis.log"), ("/@where", "db-logs")],
            },
        ],
        absent: &["GET /index.html"],
        warnings: &[],
    },
    Layout {
        dir: "15-cloud-id-system",
        around: Around::Nothing,
        out: Out::Cloud {
            user: "elastic",
            password: "Xk2pQ9vR7tLmN3",
        },
        env: &[],
        overrides: &[
            "cloud.id={cloud_id}",
            "output.elasticsearch.ssl.certificate_authorities=[{ca}]",
            // The module's default paths are the machine's own /var/log files.
            "filebeat.modules.0.syslog.var.paths=[{dir}/var/log/syslog]",
            "filebeat.modules.0.auth.var.paths=[{dir}/var/log/auth.log]",
        ],
        files: &[("var/log/syslog", &[SYSLOG]), ("var/log/auth.log", &[AUTH])],
        events: 2,
        expect: &[
            Expect {
                line: "run-parts /etc/cron.hourly",
                fields: &[("/event/dataset", "system.syslog")],
            },
            Expect {
                line: "Accepted publickey",
                fields: &[("/event/dataset", "system.auth"), ("/user/name", "deploy")],
            },
        ],
        absent: &[],
        warnings: &[],
    },
    Layout {
        dir: "16-cloud-id-env-filestream",
        around: Around::Nothing,
        out: Out::Cloud {
            user: "billing_ingest",
            password: "b1ll-pw",
        },
        env: &[
            ("ELASTIC_CLOUD_ID", "{cloud_id}"),
            ("ELASTIC_CLOUD_AUTH", "billing_ingest:b1ll-pw"),
        ],
        overrides: &["output.elasticsearch.ssl.certificate_authorities=[{ca}]"],
        files: &[(
            "var/log/billing/service.log",
            &[r#"{"lvl":"warn","msg":"invoice 1187 overdue","invoice":{"id":1187}}"#],
        )],
        events: 1,
        expect: &[Expect {
            line: "",
            fields: &[
                ("/log/level", "warn"),
                ("/msg", "invoice 1187 overdue"),
                ("/invoice/id", "1187"),
                ("/service/name", "billing"),
            ],
        }],
        absent: &[],
        warnings: &[],
    },
];

/// The layouts' folder.
fn layouts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/layouts")
}

/// Copies a layout's files from `from` to `to`, every `/var/` path moved under `root`.
fn copy_layout(from: &Path, to: &Path, root: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_layout(&path, &target, root);
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                target,
                text.replace("/var/", &format!("{}/var/", root.display())),
            )
            .unwrap();
        }
    }
}

/// The text of a JSON value as the expectations write it.
fn expected(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Whether `line` is in the event: in any of its texts (`message`, or `event.original`, or
/// where a module's pipeline put it: haproxy keeps only the request line).
fn carries(e: &Value, line: &str) -> bool {
    match e {
        Value::String(s) => s.contains(line),
        Value::Array(items) => items.iter().any(|v| carries(v, line)),
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k != "@where" && k != "log" && carries(v, line)),
        _ => false,
    }
}

/// Every JSON line of every file in `dir` (recursively not needed), each with `@where`: the
/// file's name without its `.ndjson`/date suffix is left to the expectations (prefix match).
fn file_events(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir).into_iter().flatten() {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            if let Ok(mut v) = serde_json::from_str::<Value>(line) {
                v["@where"] = json!(name);
                out.push(v);
            }
        }
    }
    out
}

/// Every event in every list of the redis-server, `@where` its key.
fn redis_events(port: u16, password: Option<&str>) -> Vec<Value> {
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new("redis-cli");
        c.args(["-p", &port.to_string(), "--raw"]);
        if let Some(p) = password {
            c.args(["--no-auth-warning", "-a", p]);
        }
        let out = c.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut out = Vec::new();
    for key in cli(&["KEYS", "*"]).lines().filter(|k| !k.is_empty()) {
        for line in cli(&["LRANGE", key, "0", "-1"]).lines() {
            if let Ok(mut v) = serde_json::from_str::<Value>(line) {
                v["@where"] = json!(key);
                out.push(v);
            }
        }
    }
    out
}

/// Reads the layout's topics from their beginning; each read adds what came since to what it
/// read before, `@where` the topic.
struct KafkaReader {
    consumer: rdkafka::consumer::BaseConsumer,
    seen: std::cell::RefCell<Vec<Value>>,
}

impl KafkaReader {
    fn new(addr: &str, topics: &[&str]) -> KafkaReader {
        use rdkafka::consumer::Consumer as _;
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", addr)
            .set("group.id", "layouts-test")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for t in topics {
            tpl.add_partition_offset(t, 0, rdkafka::Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        KafkaReader {
            consumer,
            seen: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn read(&self) -> Vec<Value> {
        use rdkafka::Message as _;
        let mut seen = self.seen.borrow_mut();
        while let Some(m) = self.consumer.poll(Duration::from_millis(300)) {
            let m = m.unwrap();
            let mut v: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            v["@where"] = json!(m.topic());
            seen.push(v);
        }
        seen.clone()
    }
}

/// What the layout's run needs besides skiff, kept alive until the end of the test.
struct World {
    vars: Vec<(&'static str, String)>,
    read: Box<dyn Fn() -> Vec<Value>>,
    _docker: Option<DockerStandIn>,
    _es: Option<EsStandIn>,
    redis: Option<Child>,
    receiver: Option<Child>,
    _kafka: Option<skiff_kafka_testkit::Broker>,
    _kube: Option<(
        tokio::runtime::Runtime,
        skiff_kubernetes::stand_in::ApiServer,
    )>,
}

impl Drop for World {
    fn drop(&mut self) {
        for mut child in [self.redis.take(), self.receiver.take()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn fill(text: &str, vars: &[(&'static str, String)]) -> String {
    vars.iter().fold(text.to_owned(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

/// A CA and a certificate for 127.0.0.1 signed by it (PEM files in `dir`): the
/// Elasticsearch stand-in's TLS for `cloud.id`, whose URLs are always https.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "layouts test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (ca_path, cert_path, key_path) =
        (dir.join("ca.pem"), dir.join("es.pem"), dir.join("es.key"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca_path, cert_path, key_path)
}

/// A `cloud.id` whose Elasticsearch URL is `https://127.0.0.1:<port>`. Elastic Cloud's URL is
/// `https://<es-id>.<host>:<port>`; with no name resolution for made-up names here, the address
/// is split across the two parts (`127.0` and `0.1`), which the decoding joins back.
fn cloud_id(port: u16) -> String {
    use base64::Engine as _;
    let raw = format!("0.1:{port}$127.0$kibana-id");
    format!(
        "test-deployment:{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn start_around(layout: &Layout, sb: &Sandbox) -> World {
    let dir = sb.path();
    let mut vars = vec![("dir", dir.display().to_string())];
    let mut docker = None;
    let mut kube = None;
    match layout.around {
        Around::Nothing => {}
        Around::Docker(containers) => {
            let sd = DockerStandIn::start(&dir.join("var/lib/docker"));
            std::fs::create_dir_all(dir.join("var/run")).unwrap();
            std::os::unix::fs::symlink(&sd.socket, dir.join("var/run/docker.sock")).unwrap();
            for c in containers {
                sd.run(c.id, c.name, c.image, c.labels);
                let lines = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
                sd.log(c.id, "stdout", &lines(c.stdout));
                sd.log(c.id, "stderr", &lines(c.stderr));
            }
            vars.push(("docker", sd.host()));
            // `/var/lib/docker/containers/<id>/`: the id's index among the path's parts.
            let depth = dir.components().count() - 1;
            vars.push(("msi", (depth + 4).to_string()));
            docker = Some(sd);
        }
        Around::Kubernetes(pods) => {
            use skiff_kubernetes::stand_in::ApiServer;
            let rt = tokio::runtime::Runtime::new().unwrap();
            let api = rt.block_on(ApiServer::start(Some("sa-token"))).unwrap();
            let logs = dir.join("var/log/containers");
            std::fs::create_dir_all(&logs).unwrap();
            for p in pods {
                // add_resource_metadata.namespace: the namespace's labels reach the events.
                api.put_namespace(
                    p.namespace,
                    json!({"team": format!("{}-team", p.namespace)}),
                );
                let annotations: serde_json::Map<String, Value> = p
                    .annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), json!(v)))
                    .collect();
                api.apply(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": p.name, "namespace": p.namespace, "uid": format!("uid-{}", p.name),
                                 "labels": {"app": p.name}, "annotations": annotations},
                    "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": p.image}]},
                    "status": {"phase": "Running", "podIP": "10.3.0.2", "containerStatuses": [
                        {"name": "app", "image": p.image, "containerID": format!("containerd://{}", p.container_id),
                         "state": {"running": {"startedAt": "2026-12-06T13:00:00Z"}}}]}}));
                // The kubelet's file name: <pod>_<namespace>_<container>-<id>.log, CRI lines.
                let text: String = p
                    .lines
                    .iter()
                    .map(|l| format!("2026-12-06T14:00:00.000000000Z stdout F {l}\n"))
                    .collect();
                let name = format!("{}_{}_app-{}.log", p.name, p.namespace, p.container_id);
                std::fs::write(logs.join(name), text).unwrap();
            }
            let kubeconfig = api.kubeconfig(dir).unwrap();
            vars.push(("kubeconfig", kubeconfig.display().to_string()));
            kube = Some((rt, api));
        }
    }
    let mut es = None;
    let mut redis = None;
    let mut receiver = None;
    let mut kafka = None;
    let read: Box<dyn Fn() -> Vec<Value>> = match layout.out {
        Out::OwnFile(folder) => {
            let out = dir.join(folder);
            Box::new(move || file_events(&out))
        }
        Out::Es {
            user,
            password,
            api_key,
        } => {
            let dump = dir.join("es-dump");
            std::fs::create_dir_all(&dump).unwrap();
            let mut args = Vec::new();
            if let Some(k) = api_key {
                args.extend(["--api-key", k]);
            } else {
                args.extend(["--user", user, "--password", password]);
            }
            let s = EsStandIn::start_with(&dump, &args);
            vars.push(("es_port", s.url.rsplit(':').next().unwrap().to_owned()));
            vars.push(("es", s.url.clone()));
            es = Some(s);
            Box::new(move || file_events(&dump))
        }
        Out::Cloud { user, password } => {
            let dump = dir.join("es-dump");
            std::fs::create_dir_all(&dump).unwrap();
            let (ca, cert, key) = tls_files(dir);
            let s = EsStandIn::start_with(
                &dump,
                &[
                    "--user",
                    user,
                    "--password",
                    password,
                    "--tls-cert",
                    cert.to_str().unwrap(),
                    "--tls-key",
                    key.to_str().unwrap(),
                ],
            );
            let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
            vars.push(("cloud_id", cloud_id(port)));
            vars.push(("ca", ca.display().to_string()));
            es = Some(s);
            Box::new(move || file_events(&dump))
        }
        Out::Kafka { topics } => {
            let broker = skiff_kafka_testkit::broker(skiff_kafka_testkit::Storage::Memory)
                .expect("the Kafka layouts need tansu (scripts/ensure-tansu.sh)");
            for t in topics {
                broker.create_topic(t, 1);
            }
            vars.push(("kafka", broker.addr()));
            let reader = KafkaReader::new(&broker.addr(), topics);
            kafka = Some(broker);
            Box::new(move || reader.read())
        }
        Out::Logstash => {
            let port = common::free_port();
            let cfg = sb.write(
                "receiver/receiver.yml",
                &format!("filebeat.inputs:\n  - {{type: beats, host: \"127.0.0.1:{port}\"}}\noutput.file: {{path: \"$DIR/out\", filename: events}}\n"),
            );
            let child = common::skiff()
                .arg("-c")
                .arg(&cfg)
                .arg("--path.home")
                .arg(dir.join("receiver"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the receiver did not listen"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            receiver = Some(child);
            vars.push(("logstash", format!("127.0.0.1:{port}")));
            let out = dir.join("out");
            Box::new(move || file_events(&out))
        }
        Out::Redis { password } => {
            let port = common::free_port();
            let extra: Vec<&str> = password.map_or(Vec::new(), |p| vec!["--requirepass", p]);
            redis = Some(common::redis_server(dir, port, &extra));
            vars.push(("redis", format!("127.0.0.1:{port}")));
            Box::new(move || redis_events(port, password))
        }
    };
    World {
        vars,
        read,
        _docker: docker,
        _es: es,
        redis,
        receiver,
        _kafka: kafka,
        _kube: kube,
    }
}

/// `skiff <args> -c filebeat.yml` with the layout's `-E` flags and environment.
fn command(layout: &Layout, sb: &Sandbox, world: &World, args: &[&str]) -> std::process::Command {
    let mut c = sb.cmd(&sb.path().join("filebeat.yml"), args);
    // Nothing of the machine's own: no cluster, no node name.
    for var in [
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "NODE_NAME",
    ] {
        c.env_remove(var);
    }
    if let Some((_, k)) = world.vars.iter().find(|(k, _)| *k == "kubeconfig") {
        c.env("KUBECONFIG", k);
    }
    for (k, v) in layout.env {
        c.env(k, fill(v, &world.vars));
    }
    for o in layout.overrides {
        c.arg("-E").arg(fill(o, &world.vars));
    }
    c
}

/// `skiff test config` accepts the layout, with no warning but those the layout allows.
fn check_loads(layout: &Layout, sb: &Sandbox, world: &World) {
    let out = command(layout, sb, world, &["test", "config"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{}: test config failed:\n{text}",
        layout.dir
    );
    assert!(text.contains("Config OK"), "{}: {text}", layout.dir);
    for line in text.lines().filter(|l| l.starts_with("warning")) {
        assert!(
            layout.warnings.iter().any(|w| line.contains(w)),
            "{}: a warning the layout does not allow: {line}\n{text}",
            layout.dir
        );
    }
}

/// Runs skiff on the layout until its events arrived (a minute at most: a start-up bound, not
/// a measure), stops it, and checks them.
fn check_runs(layout: &Layout, sb: &Sandbox, world: &World) {
    for (path, lines) in layout.files {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        sb.write(path, &text);
    }
    let child = command(layout, sb, world, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while (world.read)().len() < layout.events && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    common::sigterm(&child);
    let out = common::wait_with_timeout(child, Duration::from_secs(60));
    let log = String::from_utf8_lossy(&out.stderr);
    let got = (world.read)();
    let shown = || {
        let events: Vec<String> = got.iter().map(Value::to_string).collect();
        format!("events:\n{}\nskiff's log:\n{log}", events.join("\n"))
    };
    assert!(
        out.status.success(),
        "{}: skiff failed\n{}",
        layout.dir,
        shown()
    );
    assert_eq!(got.len(), layout.events, "{}: {}", layout.dir, shown());
    for e in layout.expect {
        let found: Vec<&Value> = got.iter().filter(|v| carries(v, e.line)).collect();
        assert_eq!(
            found.len(),
            1,
            "{}: one event for {:?}\n{}",
            layout.dir,
            e.line,
            shown()
        );
        let ev = found[0];
        for (pointer, want) in e.fields {
            let have = ev.pointer(pointer).cloned().unwrap_or(Value::Null);
            let ok = match (&have, expected(want)) {
                // `@where` is a file, index or key whose name may carry a date: a prefix.
                (Value::String(h), Value::String(w)) if *pointer == "/@where" => h.starts_with(&w),
                (h, w) => *h == w,
            };
            assert!(
                ok,
                "{}: {pointer} of {:?} is {have}, expected {want}\n{ev}",
                layout.dir, e.line
            );
        }
    }
    for line in layout.absent {
        assert!(
            got.iter().all(|v| !carries(v, line)),
            "{}: {line:?} must not arrive\n{}",
            layout.dir,
            shown()
        );
    }
}

fn run_layout(layout: &Layout) {
    let sb = Sandbox::new();
    copy_layout(&layouts_dir().join(layout.dir), sb.path(), sb.path());
    let world = start_around(layout, &sb);
    check_loads(layout, &sb, &world);
    check_runs(layout, &sb, &world);
}

/// Runs the layouts `which` chooses, one after the other (the test functions run in parallel).
fn run_all(which: impl Fn(&Layout) -> bool) {
    let chosen: Vec<&Layout> = LAYOUTS.iter().filter(|l| which(l)).collect();
    assert!(!chosen.is_empty());
    for layout in chosen {
        run_layout(layout);
    }
}

#[test]
fn the_table_has_the_layouts_of_issue_11() {
    let count = |p: &dyn Fn(&Layout) -> bool| LAYOUTS.iter().filter(|l| p(l)).count();
    let is_docker = |l: &Layout| matches!(l.around, Around::Docker(_));
    let is_kube = |l: &Layout| matches!(l.around, Around::Kubernetes(_));
    let is_cloud = |l: &Layout| matches!(l.out, Out::Cloud { .. });
    assert_eq!(count(&is_docker), 5);
    assert_eq!(count(&is_kube), 1);
    assert_eq!(count(&is_cloud), 2);
    assert_eq!(count(&|l| l.dir.contains("-modules-")), 8);
    // Every folder is in the table, and the other way round.
    let mut on_disk: Vec<String> = std::fs::read_dir(layouts_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = LAYOUTS.iter().map(|l| l.dir).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn docker_autodiscover_layouts_load_and_run() {
    run_all(|l| matches!(l.around, Around::Docker(_)));
}

#[test]
fn kubernetes_autodiscover_layout_loads_and_runs() {
    run_all(|l| matches!(l.around, Around::Kubernetes(_)));
}

#[test]
fn module_layouts_load_and_run() {
    run_all(|l| l.dir.contains("-modules-"));
}

#[test]
fn cloud_id_layouts_load_and_run() {
    run_all(|l| matches!(l.out, Out::Cloud { .. }));
}
