//! Test helpers: a real `redis-server` of our own, and a deliberately broken stand-in that
//! answers Redis commands with wrong replies.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_event::Value;
use skiff_output_redis::resp::{Conn, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A redis-server of our own, killed on drop.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
    tls: bool,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Server::start_on(free_port(), extra)
    }

    /// A plain server on `port` (to take over a port a stand-in held).
    pub fn start_on(port: u16, extra: &[&str]) -> Server {
        let mut s = Server {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: false,
        };
        s.spawn();
        s
    }

    /// A TLS-only server with a certificate for `localhost` (no IP SAN) signed by a test CA;
    /// returns the CA's PEM file.
    pub fn start_tls() -> (Server, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skiff test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        let d = dir.path().to_owned();
        let arg = |f: &str| d.join(f).to_string_lossy().into_owned();
        let mut s = Server {
            child: None,
            port: free_port(),
            extra: vec![
                "--tls-cert-file".into(),
                arg("server.pem"),
                "--tls-key-file".into(),
                arg("server.key"),
                "--tls-ca-cert-file".into(),
                arg("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            dir,
            tls: true,
        };
        s.spawn();
        (s, ca_file)
    }

    pub fn spawn(&mut self) {
        let port = self.port.to_string();
        let port_args: Vec<&str> = if self.tls {
            vec!["--port", "0", "--tls-port", &port]
        } else {
            vec!["--port", &port]
        };
        let child = Command::new("redis-server")
            .args(&port_args)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--dir"])
            .arg(self.dir.path())
            .args(if self.extra.iter().any(|a| a == "--appendonly") {
                vec![]
            } else {
                vec!["--appendonly", "no"]
            })
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn client(&self, password: Option<&str>) -> Conn {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut c = Conn::new(Box::new(tcp));
        if let Some(p) = password {
            assert_eq!(
                c.call(&[b"AUTH", p.as_bytes()]).await.unwrap(),
                Reply::Status("OK".into())
            );
        }
        c
    }

    pub async fn lrange(&self, key: &str, password: Option<&str>) -> Vec<Value> {
        let mut c = self.client(password).await;
        match c
            .call(&[b"LRANGE", key.as_bytes(), b"0", b"-1"])
            .await
            .unwrap()
        {
            Reply::Array(Some(items)) => items
                .into_iter()
                .map(|r| match r {
                    Reply::Bulk(Some(b)) => serde_json::from_slice(&b).unwrap(),
                    other => panic!("unexpected item {other:?}"),
                })
                .collect(),
            other => panic!("unexpected LRANGE reply {other:?}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the broken stand-in does with one connection, after reading the first bytes of the
/// client's commands.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// Writes these bytes, keeps reading (and ignoring) until the client hangs up.
    Reply(&'static [u8]),
    /// Writes these bytes and closes the connection.
    ReplyThenClose(&'static [u8]),
    /// Closes the connection without a word.
    Close,
    /// Keeps the connection open and says nothing (the client must time out).
    Silent,
}

/// **A deliberately broken stand-in, not Redis.** It accepts one connection per [`Answer`] on
/// `listener`, answers the client's first commands with it, then stops listening, so that a
/// real `redis-server` can take the port over. Returns how many connections it served.
pub async fn hostile(listener: TcpListener, answers: Vec<Answer>) -> usize {
    let mut served = 0;
    for answer in answers {
        let (mut s, _) = listener.accept().await.unwrap();
        served += 1;
        let mut buf = vec![0u8; 64 << 10];
        // The client writes its whole pipeline at once; answer after its first bytes.
        if s.read(&mut buf).await.unwrap_or(0) == 0 {
            continue;
        }
        match answer {
            Answer::Reply(b) => {
                let _ = s.write_all(b).await;
                tokio::spawn(async move { while s.read(&mut buf).await.is_ok_and(|n| n > 0) {} });
            }
            Answer::ReplyThenClose(b) => {
                let _ = s.write_all(b).await;
                let _ = s.shutdown().await;
            }
            Answer::Close => drop(s),
            Answer::Silent => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(s);
                });
            }
        }
    }
    served
}
