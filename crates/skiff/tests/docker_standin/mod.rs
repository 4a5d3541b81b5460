//! A stand-in of the Docker daemon for the autodiscover tests: no Docker daemon can run on
//! these machines (only the `docker` client is installed).
//!
//! Written from the Docker Engine API reference (<https://docs.docker.com/reference/api/engine/>,
//! version 1.43) and the `json-file` logging driver's documentation
//! (<https://docs.docker.com/engine/logging/drivers/json-file/>): HTTP/1.1 over a unix socket;
//! `GET /version` (unversioned, `ApiVersion`), and under the `/v1.43` prefix (other prefixes
//! answer 400, as a daemon does for a version it does not support):
//! `GET /containers/json` (running containers: `Id`, `Names` with a leading `/`, `Image`,
//! `Labels`, `State`), `GET /containers/{id}/json` (`Id`, `Name`, `Config.Image`,
//! `Config.Labels`, `State.Running`, `LogPath`; 404 with `{"message"}` when unknown) and
//! `GET /events` (chunked, one JSON object per line: `Type`, `Action`, `Actor.ID`,
//! `Actor.Attributes`, plus the legacy `status`, `id`, `from`; kept open).
//!
//! Containers "run" in a folder standing for `/var/lib/docker/containers`: starting one makes
//! `<dir>/<id>/<id>-json.log`, and [`DockerStandIn::log`] appends lines in the json-file format
//! (`{"log":"...\n","stream":"stdout","time":"..."}`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

const API: &str = "1.43";

#[derive(Clone)]
struct Container {
    id: String,
    name: String,
    image: String,
    labels: BTreeMap<String, String>,
    running: bool,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, Container>,
    subscribers: Vec<UnixStream>,
    /// Every request line seen, for tests that check the client's requests.
    requests: Vec<String>,
}

/// The stand-in daemon; its listener thread ends with the process.
pub struct DockerStandIn {
    pub socket: PathBuf,
    pub containers_dir: PathBuf,
    state: Arc<Mutex<State>>,
}

impl DockerStandIn {
    /// Listens on `<dir>/docker.sock`; containers live in `<dir>/containers`.
    pub fn start(dir: &Path) -> DockerStandIn {
        let socket = dir.join("docker.sock");
        let containers_dir = dir.join("containers");
        std::fs::create_dir_all(&containers_dir).unwrap();
        let listener = UnixListener::bind(&socket).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, s));
            }
        });
        DockerStandIn {
            socket,
            containers_dir,
            state,
        }
    }

    /// `host:` for skiff.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Creates and starts a container (its log file exists from now on).
    pub fn run(&self, id: &str, name: &str, image: &str, labels: &[(&str, &str)]) {
        let dir = self.containers_dir.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{id}-json.log")))
            .unwrap();
        let c = Container {
            id: id.into(),
            name: name.into(),
            image: image.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            running: true,
        };
        self.state
            .lock()
            .unwrap()
            .containers
            .insert(id.into(), c.clone());
        self.emit(&c, "create");
        self.emit(&c, "start");
    }

    /// Stops a container: `kill`, `die`, `stop` events, as `docker stop` makes.
    pub fn stop(&self, id: &str) {
        let c = {
            let mut st = self.state.lock().unwrap();
            let c = st.containers.get_mut(id).unwrap();
            c.running = false;
            c.clone()
        };
        for action in ["kill", "die", "stop"] {
            self.emit(&c, action);
        }
    }

    /// Stops a container without any event reaching skiff (as if it stopped while skiff's
    /// connection was down).
    pub fn stop_silently(&self, id: &str) {
        self.state
            .lock()
            .unwrap()
            .containers
            .get_mut(id)
            .unwrap()
            .running = false;
    }

    /// Closes every open event stream (a daemon restart, as far as clients can tell).
    pub fn drop_event_streams(&self) {
        let subs = std::mem::take(&mut self.state.lock().unwrap().subscribers);
        for s in subs {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Whether any client is subscribed to events.
    pub fn subscribers(&self) -> usize {
        self.state.lock().unwrap().subscribers.len()
    }

    /// Request lines seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Appends `lines` to the container's log in the json-file format, on `stream`.
    pub fn log(&self, id: &str, stream: &str, lines: &[String]) {
        let path = self.containers_dir.join(id).join(format!("{id}-json.log"));
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        let mut text = String::new();
        for l in lines {
            let doc = json!({"log": format!("{l}\n"), "stream": stream, "time": "2026-12-06T14:00:00.000000000Z"});
            text.push_str(&doc.to_string());
            text.push('\n');
        }
        f.write_all(text.as_bytes()).unwrap();
    }

    fn emit(&self, c: &Container, action: &str) {
        let mut attrs = serde_json::Map::new();
        attrs.insert("image".into(), json!(c.image));
        attrs.insert("name".into(), json!(c.name));
        for (k, v) in &c.labels {
            attrs.insert(k.clone(), json!(v));
        }
        let ev = json!({
            "status": action, "id": c.id, "from": c.image,
            "Type": "container", "Action": action,
            "Actor": {"ID": c.id, "Attributes": attrs},
            "scope": "local", "time": 1_796_000_000u64, "timeNano": 1_796_000_000_000_000_000u64,
        });
        let line = format!("{ev}\n");
        let chunk = format!("{:x}\r\n{line}\r\n", line.len());
        let mut st = self.state.lock().unwrap();
        st.subscribers
            .retain_mut(|s| s.write_all(chunk.as_bytes()).is_ok());
    }
}

fn list_item(c: &Container) -> Value {
    json!({"Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image,
        "Labels": c.labels, "State": "running", "Status": "Up 1 second"})
}

fn inspect(c: &Container) -> Value {
    json!({"Id": c.id, "Name": format!("/{}", c.name),
        "Config": {"Image": c.image, "Labels": c.labels},
        "State": {"Running": c.running, "Status": if c.running {"running"} else {"exited"}},
        "LogPath": format!("/var/lib/docker/containers/{0}/{0}-json.log", c.id)})
}

fn respond(conn: &mut UnixStream, status: &str, body: &Value) {
    let text = body.to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: {API}\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
}

fn serve(conn: UnixStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        // Headers: read and ignore (GET requests have no body).
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
        }
        let mut parts = request.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        state
            .lock()
            .unwrap()
            .requests
            .push(request.trim().to_owned());
        let path = target.split('?').next().unwrap_or("");
        if method != "GET" {
            respond(
                &mut conn,
                "405 Method Not Allowed",
                &json!({"message": "GET only"}),
            );
            continue;
        }
        if path == "/version" {
            respond(
                &mut conn,
                "200 OK",
                &json!({"ApiVersion": API, "MinAPIVersion": "1.24", "Version": "24.0.7", "Os": "linux"}),
            );
            continue;
        }
        let Some(rest) = path.strip_prefix(&format!("/v{API}")) else {
            respond(
                &mut conn,
                "400 Bad Request",
                &json!({"message": format!("client version in {path} is not supported by this stand-in (API {API})")}),
            );
            continue;
        };
        if rest == "/containers/json" {
            let list: Vec<Value> = state
                .lock()
                .unwrap()
                .containers
                .values()
                .filter(|c| c.running)
                .map(list_item)
                .collect();
            respond(&mut conn, "200 OK", &Value::Array(list));
        } else if let Some(id) = rest
            .strip_prefix("/containers/")
            .and_then(|r| r.strip_suffix("/json"))
        {
            let found = state.lock().unwrap().containers.get(id).map(inspect);
            match found {
                Some(v) => respond(&mut conn, "200 OK", &v),
                None => respond(
                    &mut conn,
                    "404 Not Found",
                    &json!({"message": format!("No such container: {id}")}),
                ),
            }
        } else if rest == "/events" {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: {API}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let _ = conn.flush();
            state
                .lock()
                .unwrap()
                .subscribers
                .push(conn.try_clone().unwrap());
            // The stream stays open until the client or the test closes it.
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
            return;
        } else {
            respond(
                &mut conn,
                "404 Not Found",
                &json!({"message": "page not found"}),
            );
        }
    }
}
