//! The golang module against a real Go program (built here with Debian's Go toolchain) that
//! serves expvar on `/debug/vars`, runs garbage collections all the time, and protects a copy
//! of the document with basic auth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{fetch, get, need, num};

const PROGRAM: &str = r#"
package main

import (
	"expvar"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"
)

var sink [][]byte

func main() {
	expvar.NewInt("requests").Set(42)
	expvar.NewString("build").Set("skiff-test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	http.HandleFunc("/secure/debug/vars", func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "admin" || p != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		expvar.Handler().ServeHTTP(w, r)
	})
	go func() {
		for {
			for i := 0; i < 2000; i++ {
				sink = append(sink, make([]byte, 1024))
			}
			sink = nil
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	fmt.Println(ln.Addr().String())
	os.Stdout.Sync()
	http.Serve(ln, nil)
}
"#;

struct GoProgram {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for GoProgram {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_go_program() -> GoProgram {
    let go = need("go");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.go"), PROGRAM).unwrap();
    let bin = dir.path().join("expvarapp");
    let out = Command::new(go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg("main.go")
        .current_dir(dir.path())
        .env("GOCACHE", dir.path().join("cache"))
        .env("GOPATH", dir.path().join("gopath"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(&bin)
        .arg("--flag-for-cmdline")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    GoProgram {
        child,
        addr: line.trim().to_owned(),
        _dir: dir,
    }
}

#[tokio::test]
async fn heap_and_expvar_from_a_real_go_program() {
    let app = start_go_program();
    let yaml = format!(
        "module: golang\nmetricsets: [heap, expvar]\nhosts: ['{}']\nperiod: 10s\nexpvar.namespace: app\n",
        app.addr
    );
    let mut block = common::block(&yaml);
    // Let the program run a few GC cycles first (one every 20 ms).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let first = block.fetch_all_once().await;
    assert_eq!(first.len(), 2, "{first:?}");
    let heap = first
        .iter()
        .find(|e| e.contains_key("golang") && get(e, "event.dataset") == "golang.heap")
        .unwrap();
    assert_eq!(get(heap, "event.module"), "golang");
    assert_eq!(get(heap, "metricset.name"), "heap");
    assert_eq!(get(heap, "metricset.period"), 10000);
    assert_eq!(get(heap, "service.type"), "golang");
    assert_eq!(
        get(heap, "service.address").as_str(),
        Some(app.addr.as_str())
    );
    assert!(num(heap, "event.duration") > 0.0);
    assert!(
        get(heap, "golang.heap.cmdline")
            .as_str()
            .unwrap()
            .ends_with("expvarapp --flag-for-cmdline")
    );
    for f in [
        "allocations.mallocs",
        "allocations.frees",
        "allocations.objects",
        "allocations.total",
        "allocations.allocated",
        "allocations.idle",
        "allocations.active",
        "system.total",
        "system.obtained",
        "system.stack",
        "system.released",
        "gc.next_gc_limit",
        "gc.total_count",
        "gc.total_pause.ns",
        "gc.pause.count",
        "gc.pause.sum.ns",
        "gc.pause.max.ns",
        "gc.pause.avg.ns",
    ] {
        assert!(
            get(heap, &format!("golang.heap.{f}")).is_u64(),
            "{f} is not a count"
        );
    }
    assert!(get(heap, "golang.heap.gc.cpu_fraction").is_f64());
    // Plausible: the program allocated 2 MB per cycle and collects every 20 ms.
    assert!(
        num(heap, "golang.heap.allocations.total")
            >= num(heap, "golang.heap.allocations.allocated")
    );
    assert!(num(heap, "golang.heap.system.total") >= num(heap, "golang.heap.system.obtained"));
    let gc1 = num(heap, "golang.heap.gc.total_count");
    assert!(gc1 >= 1.0);
    // First fetch: every cycle so far (at most the ring's 256).
    assert_eq!(num(heap, "golang.heap.gc.pause.count"), gc1.min(256.0));
    assert!(num(heap, "golang.heap.gc.pause.max.ns") >= num(heap, "golang.heap.gc.pause.avg.ns"));

    let expvar = first
        .iter()
        .find(|e| get(e, "event.dataset") == "golang.app")
        .unwrap();
    assert_eq!(get(expvar, "metricset.name"), "expvar");
    assert_eq!(get(expvar, "golang.app.requests"), 42);
    assert_eq!(get(expvar, "golang.app.build"), "skiff-test");
    assert!(
        get(expvar, "golang.app.cmdline")
            .as_str()
            .unwrap()
            .contains("--flag-for-cmdline")
    );
    assert!(get(expvar, "golang.app.memstats.HeapAlloc").is_u64());

    // Second fetch: the pause count is the number of cycles in between.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = block.fetch_all_once().await;
    let heap2 = second
        .iter()
        .find(|e| get(e, "event.dataset") == "golang.heap")
        .unwrap();
    let gc2 = num(heap2, "golang.heap.gc.total_count");
    assert!(gc2 > gc1, "no GC in 300 ms? {gc1} -> {gc2}");
    assert_eq!(
        num(heap2, "golang.heap.gc.pause.count"),
        (gc2 - gc1).min(256.0)
    );
    assert!(num(heap2, "golang.heap.gc.pause.sum.ns") > 0.0);
}

#[tokio::test]
async fn a_down_host_is_an_error_event_and_the_next_fetch_runs() {
    let port = common::closed_port();
    let yaml =
        format!("module: golang\nmetricsets: [heap]\nhosts: ['127.0.0.1:{port}']\nperiod: 1s\n");
    let mut block = common::block(&yaml);
    for _ in 0..2 {
        let events = block.fetch_all_once().await;
        assert_eq!(events.len(), 1);
        let e = &events[0];
        let msg = get(e, "error.message").as_str().unwrap();
        assert!(
            msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("error fetching"),
            "{msg}"
        );
        assert_eq!(get(e, "event.dataset"), "golang.heap");
        assert_eq!(get(e, "metricset.name"), "heap");
        assert_eq!(
            get(e, "service.address").as_str(),
            Some(format!("127.0.0.1:{port}").as_str())
        );
        assert!(e.get("golang").is_none());
    }
}

#[tokio::test]
async fn a_wrong_password_says_so() {
    let app = start_go_program();
    let base = format!(
        "module: golang\nmetricsets: [heap]\nhosts: ['http://{}']\nheap.path: /secure/debug/vars\nusername: admin\n",
        app.addr
    );
    let events = fetch(&format!("{base}password: wrong\n")).await;
    let msg = get(&events[0], "error.message").as_str().unwrap();
    assert!(
        msg.contains("authentication failed") && msg.contains("401"),
        "{msg}"
    );
    let events = fetch(&format!("{base}password: right\n")).await;
    assert!(events[0].get("error").is_none(), "{:?}", events[0]);
    assert!(num(&events[0], "golang.heap.gc.total_count") >= 0.0);
    // Credentials in the URL win over username/password.
    let url = format!(
        "module: golang\nmetricsets: [heap]\nhosts: ['http://admin:right@{}']\nheap.path: /secure/debug/vars\nusername: x\npassword: y\n",
        app.addr
    );
    let events = fetch(&url).await;
    assert!(events[0].get("error").is_none(), "{:?}", events[0]);
    assert_eq!(
        get(&events[0], "service.address").as_str(),
        Some(app.addr.as_str())
    );
}

#[test]
fn configuration_errors_name_the_line_and_the_fix() {
    let bad = |yaml: &str| {
        let node = skiff_config::parse_str(yaml, Some("m.yml")).unwrap();
        skiff_input_metrics::Block::from_node(&node)
            .unwrap_err()
            .to_string()
    };
    let e = bad("module: golang\nmetricsets: [heap]\nperiod: 10s\nhsts: [x]\n");
    assert!(e.contains("m.yml:4") && e.contains("hosts"), "{e}");
    let e = bad("module: golnag\nmetricsets: [heap]\n");
    assert!(e.contains("m.yml:1") && e.contains("golang"), "{e}");
    let e = bad("module: golang\nmetricsets: [heap, exvpar]\n");
    assert!(e.contains("m.yml:2") && e.contains("expvar"), "{e}");
    let e = bad("module: golang\nmetricsets: [expvar]\n");
    assert!(e.contains("expvar.namespace"), "{e}");
    let e = bad("module: golang\nmetricsets: [heap]\nheap.pth: /x\n");
    assert!(e.contains("m.yml:3") && e.contains("path"), "{e}");
    let e = bad("module: golang\nmetricsets: [heap]\nhosts: [a, a]\n");
    assert!(e.contains("listed twice"), "{e}");
    let e = bad("module: golang\nmetricsets: [heap]\nperiod: 0s\n");
    assert!(e.contains("positive"), "{e}");
    let e = bad("module: golang\n");
    assert!(e.contains("no default metricsets"), "{e}");
}
