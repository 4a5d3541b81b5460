//! Live capture on `lo` with real clients and servers: Python's http.server answering curl
//! (two requests on one kept-alive connection; three chunked bodies on another), ping,
//! dnsmasq answering dig over UDP and TCP, a TLS handshake between openssl and curl, and an
//! SMTP session between Python's smtplib and smtpd. Needs root (or CAP_NET_RAW), libpcap,
//! python3 (3.11: its `smtpd`), curl, ping, openssl, dnsmasq and dig
//! (scripts/ensure-test-deps installs them); a missing one fails the test with its name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use skiff_input_packet::capture::live;

mod common;
use common::{capture_while, free_port, need};

#[test]
fn http_and_ping_on_loopback_become_transactions() {
    for t in ["python3", "curl", "ping"] {
        need(t);
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.txt"),
        "hello from skiff's live test\n",
    )
    .unwrap();
    let mut server = serve(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir.path()),
        port,
    );

    let yaml = format!(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n- {{type: http, ports: [{port}]}}\n- {{type: icmp}}\n"
    );
    let evs = capture_while(&yaml, || {
        let url = format!("http://127.0.0.1:{port}/hello.txt");
        let missing = format!("http://127.0.0.1:{port}/missing");
        let curl = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "--http1.1",
                &url,
                &missing,
            ])
            .status()
            .unwrap();
        assert!(curl.success());
        let ping = Command::new("ping")
            .args(["-c", "2", "-i", "0.2", "127.0.0.1"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ping.success());
    });
    let _ = server.kill();
    let _ = server.wait();
    let http: Vec<_> = evs.iter().filter(|e| e["type"] == "http").collect();
    assert_eq!(http.len(), 2, "{evs:#?}");
    assert_eq!(http[0]["url.path"], "/hello.txt");
    assert_eq!(http[0]["http.response.status_code"], 200);
    assert_eq!(http[0]["http.response.body.bytes"], 29);
    assert_eq!(http[1]["http.response.status_code"], 404);
    assert_eq!(http[1]["status"], "Error");
    assert_eq!(http[0]["server.port"], port);
    let icmp: Vec<_> = evs.iter().filter(|e| e["type"] == "icmp").collect();
    assert_eq!(icmp.len(), 2, "{evs:#?}");
    assert!(
        icmp.iter()
            .all(|e| e["status"] == "OK" && e["icmp.response.type"] == 0)
    );
}

/// A TLS 1.2 handshake between `openssl s_server` (a certificate the test makes) and curl:
/// one established tls event whose SNI, ALPN and certificate fingerprint are the ones openssl
/// reports for the certificate.
#[test]
fn a_tls_handshake_between_openssl_and_curl() {
    for t in ["openssl", "curl"] {
        need(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/C=US/O=skiff/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    // `sha1 Fingerprint=AB:CD:...`
    let fp = String::from_utf8_lossy(&fp.stdout);
    let sha1: String = fp
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_uppercase();
    let port = free_port();
    let mut server = serve(
        Command::new("openssl")
            .args([
                "s_server",
                "-www",
                "-alpn",
                "http/1.1",
                "-accept",
                &port.to_string(),
            ])
            .arg("-key")
            .arg(&key)
            .arg("-cert")
            .arg(&cert)
            .stdin(Stdio::piped()),
        port,
    );
    let yaml = format!(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n- {{type: tls, ports: [{port}], fingerprints: [sha1]}}\n"
    );
    let evs = capture_while(&yaml, || {
        let curl = Command::new("curl")
            .args([
                "-s",
                "-k",
                "-o",
                "/dev/null",
                "--tlsv1.2",
                "--tls-max",
                "1.2",
            ])
            .args([
                "--http1.1",
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
            ])
            .arg(format!("https://localhost:{port}/"))
            .status()
            .unwrap();
        assert!(curl.success());
    });
    let _ = server.kill();
    let _ = server.wait();
    let tls: Vec<_> = evs.iter().filter(|e| e["type"] == "tls").collect();
    assert_eq!(tls.len(), 1, "{evs:#?}");
    let e = tls[0];
    assert_eq!(e["tls.established"], true, "{e:#?}");
    assert_eq!(e["status"], "OK");
    assert_eq!(e["tls.version"], "1.2");
    assert_eq!(e["tls.client.server_name"], "localhost");
    assert_eq!(e["destination.domain"], "localhost");
    assert_eq!(e["tls.next_protocol"], "http/1.1");
    assert_eq!(e["server.port"], port);
    assert_eq!(e["tls.server.hash.sha1"], sha1.as_str());
    assert_eq!(e["tls.server.subject"], "CN=localhost,O=skiff,C=US");
    assert_eq!(e["tls.server.x509.public_key_size"], 2048);
    assert_eq!(e["tls.client.ja3"].as_str().map(str::len), Some(32));
}

#[test]
fn dig_against_dnsmasq_over_udp_and_tcp() {
    for t in ["dnsmasq", "dig"] {
        need(t);
    }
    let port = free_port();
    let mut server = Command::new("dnsmasq")
        .args([
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            &format!("--port={port}"),
            "--address=/skiff.test/10.1.2.3",
            "--user=root",
            "--pid-file",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let yaml = format!(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n- {{type: dns, ports: [{port}]}}\n"
    );
    let evs = capture_while(&yaml, || {
        for tcp in [false, true] {
            let mut c = Command::new("dig");
            c.args([
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "www.skiff.test",
                "A",
                "+tries=1",
                "+time=2",
            ]);
            if tcp {
                c.arg("+tcp");
            }
            let out = c.output().unwrap();
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("10.1.2.3"),
                "{out:?}"
            );
        }
    });
    let _ = server.kill();
    let _ = server.wait();
    let dns: Vec<_> = evs.iter().filter(|e| e["type"] == "dns").collect();
    assert_eq!(dns.len(), 2, "{evs:#?}");
    let transports: Vec<&str> = dns
        .iter()
        .map(|e| e["network.transport"].as_str().unwrap())
        .collect();
    assert_eq!(transports, ["udp", "tcp"]);
    for e in dns {
        assert_eq!(e["query"], "class IN, type A, www.skiff.test");
        assert_eq!(e["dns.resolved_ip"], serde_json::json!(["10.1.2.3"]));
        assert_eq!(e["status"], "OK");
        assert_eq!(e["server.port"], port);
    }
}

#[test]
fn an_invalid_filter_is_refused() {
    assert!(live::check_filter("tcp port 80 or icmp").is_ok());
    assert!(live::check_filter("tcp prot 80").is_err());
}

/// A tiny HTTP/1.1 server (Python's http.server) whose `GET /chunks/N` answers with N chunks
/// of 100, 200, ... bytes under `Transfer-Encoding: chunked`, on one kept-alive connection.
const CHUNKED_SERVER: &str = r#"
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Chunked(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        n = int(self.path.rsplit("/", 1)[-1])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(n):
            chunk = b"x" * (100 * (i + 1))
            self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Chunked).serve_forever()
"#;

/// Starts `cmd` and waits until something listens on `port`.
fn serve(cmd: &mut Command, port: u16) -> std::process::Child {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server on port {port} did not start: {cmd:?}");
}

/// curl fetches three chunked bodies over one kept-alive connection: three transactions,
/// each with status 200 and `http.response.body.bytes` equal to the de-chunked size curl
/// itself reports (`%{size_download}`), not the size on the wire.
#[test]
fn chunked_bodies_on_a_kept_alive_connection() {
    for t in ["python3", "curl"] {
        need(t);
    }
    let port = free_port();
    let mut server = serve(
        Command::new("python3").args(["-c", CHUNKED_SERVER, &port.to_string()]),
        port,
    );
    let yaml = format!(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n- {{type: http, ports: [{port}]}}\n"
    );
    let counts = [1, 3, 5];
    let mut sizes = Vec::new();
    let mut connects = Vec::new();
    let evs = capture_while(&yaml, || {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "--http1.1",
            "-w",
            "%{size_download} %{num_connects}\n",
        ]);
        for n in counts {
            c.args(["-o", "/dev/null"])
                .arg(format!("http://127.0.0.1:{port}/chunks/{n}"));
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (size, conns) = line.split_once(' ').unwrap();
            sizes.push(size.parse::<u64>().unwrap());
            connects.push(conns.parse::<u64>().unwrap());
        }
    });
    let _ = server.kill();
    let _ = server.wait();
    // curl says it reused the first connection, and the bodies are what the server wrote.
    assert_eq!(
        connects,
        [1, 0, 0],
        "curl did not keep the connection alive"
    );
    assert_eq!(sizes, [100, 600, 1500]);
    let http: Vec<_> = evs.iter().filter(|e| e["type"] == "http").collect();
    assert_eq!(http.len(), counts.len(), "{evs:#?}");
    for ((e, n), size) in http.iter().zip(counts).zip(&sizes) {
        assert_eq!(e["url.path"], format!("/chunks/{n}"), "{e:#?}");
        assert_eq!(e["http.response.status_code"], 200, "{e:#?}");
        assert_eq!(e["status"], "OK", "{e:#?}");
        assert_eq!(e["http.response.body.bytes"], *size, "{e:#?}");
        assert_eq!(e["client.port"], http[0]["client.port"], "one connection");
        assert_eq!(e["server.port"], port);
    }
}

/// Python's smtplib sends EHLO, MAIL FROM, two RCPT TO, DATA and QUIT to Python's smtpd: one
/// transaction per command with the server's reply code, the addresses without `<>`, and the
/// message size (the bytes between `354` and the closing `.` line) as docs/packet.md says.
#[test]
fn an_smtp_session_between_smtplib_and_smtpd() {
    need("python3");
    let has_smtpd = Command::new("python3")
        .args(["-W", "ignore", "-c", "import smtpd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_smtpd,
        "python3's smtpd module is missing (Python >= 3.12?)"
    );
    let port = free_port();
    let mut server = serve(
        Command::new("python3").args([
            "-W",
            "ignore",
            "-m",
            "smtpd",
            "-n",
            "-c",
            "DebuggingServer",
            &format!("127.0.0.1:{port}"),
        ]),
        port,
    );
    let message = "From: alice@skiff.test\r\nTo: bob@skiff.test\r\nSubject: live\r\n\r\n\
                   Hello from skiff's live test.\r\nSecond line.\r\n";
    let client = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {port})\n\
         s.ehlo('client.skiff.test')\n\
         assert s.mail('alice@skiff.test')[0] == 250\n\
         assert s.rcpt('bob@skiff.test')[0] == 250\n\
         assert s.rcpt('carol@skiff.test')[0] == 250\n\
         assert s.data({message:?})[0] == 250\n\
         s.quit()\n"
    );
    let yaml = format!(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n- {{type: smtp, ports: [{port}]}}\n"
    );
    let evs = capture_while(&yaml, || {
        let out = Command::new("python3")
            .args(["-c", &client])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    });
    let _ = server.kill();
    let _ = server.wait();
    let smtp: Vec<_> = evs.iter().filter(|e| e["type"] == "smtp").collect();
    let commands: Vec<(&str, u64)> = smtp
        .iter()
        .map(|e| {
            (
                e["smtp.request.command"].as_str().unwrap(),
                e["smtp.response.code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        commands,
        [
            ("EHLO", 250),
            ("MAIL", 250),
            ("RCPT", 250),
            ("RCPT", 250),
            ("DATA", 250),
            ("QUIT", 221),
        ],
        "{evs:#?}"
    );
    assert_eq!(smtp[0]["smtp.request.parameter"], "client.skiff.test");
    assert_eq!(smtp[1]["smtp.mail_from"], "alice@skiff.test");
    assert_eq!(smtp[2]["smtp.rcpt_to"], "bob@skiff.test");
    assert_eq!(smtp[3]["smtp.rcpt_to"], "carol@skiff.test");
    assert_eq!(smtp[4]["smtp.data.bytes"], message.len());
    assert_eq!(smtp[4]["event.action"], "smtp.data");
    for e in &smtp {
        assert_eq!(e["status"], "OK", "{e:#?}");
        assert_eq!(e["event.outcome"], "success");
        assert_eq!(e["server.port"], port);
    }
}
