//! The file input on real files, through a real memory queue and output worker: every line
//! exactly once through rotation, truncation, deletion, inode reuse, symlinks, huge lines.

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn cfg(paths: &str, extra: &str) -> String {
    format!("type: filestream\nid: t1\npaths: [\"{paths}\"]\n{FAST}{extra}")
}

fn assert_exactly_once(events: &[Value], prefix: &str, n: usize) {
    let mut got = numbers(events, prefix);
    got.sort_unstable();
    let want: Vec<usize> = (0..n).collect();
    if got != want {
        let mut dups = got.clone();
        dups.dedup();
        panic!(
            "{prefix}: expected 0..{n} exactly once; got {} lines ({} distinct), first missing {:?}",
            got.len(),
            dups.len(),
            want.iter().find(|i| got.binary_search(i).is_err())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_offsets_and_a_last_line_without_newline() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("a.log");
    std::fs::write(&p, b"first\r\nsecond\n\nno newline").unwrap();
    let r = start(
        &cfg("$DIR/*.log", "line_flush_timeout: 200ms\n"),
        logs.path(),
        data.path(),
    );
    r.wait_count(3).await;
    let ev = r.events();
    let msgs: Vec<&str> = ev.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(
        msgs,
        ["first", "second", "no newline"],
        "the empty line is dropped"
    );
    let meta = std::fs::metadata(&p).unwrap();
    let e = &ev[0];
    assert_eq!(e["log"]["file"]["path"], p.to_str().unwrap());
    assert_eq!(e["log"]["file"]["inode"], meta.ino().to_string());
    assert_eq!(e["log"]["file"]["device_id"], meta.dev().to_string());
    assert!(
        e["log"]["file"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("25-")
    );
    assert_eq!(e["input"]["type"], "filestream");
    assert_eq!(e["agent"]["type"], "filebeat");
    let offsets: Vec<u64> = ev
        .iter()
        .map(|e| e["log"]["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 7, 15]);
    // Everything acknowledged and the status says so.
    let st = r
        .wait_status(&p, "acked to the end", |f| f["acked_offset"] == 25)
        .await;
    assert_eq!(st["size"], 25);
    assert_eq!(st["input_id"], "t1");
    let ev = r.stop().await;
    assert_eq!(ev.len(), 3);
    let reg = skiff_input_file::list_registry(data.path()).unwrap();
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].acked_offset, 25);
    assert!(reg[0].fully_shipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_byte_file_is_read_at_once() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("small.log");
    std::fs::write(&p, b"0123456789abcdefghi\n").unwrap();
    let r = start(&cfg("$DIR/*.log", ""), logs.path(), data.path());
    r.wait_count(1).await;
    assert_eq!(
        r.events()[0]["log"]["file"]["fingerprint"]
            .as_str()
            .unwrap()[..3],
        *"20-"
    );
    // It grows: the fingerprint grows with it, and the new line is read once.
    append(&p, b"more\n");
    r.wait_count(2).await;
    r.wait_status(&p, "fingerprint 25", |f| {
        f["fingerprint"].as_str().unwrap().starts_with("25-")
    })
    .await;
    let ev = r.stop().await;
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1]["message"], "more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_loses_and_repeats_nothing() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    let r = start(&cfg("$DIR/app.log*", ""), logs.path(), data.path());
    let mut n = 0;
    for round in 0..5 {
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(numbered("line", n, n + 1000).as_bytes())
            .unwrap();
        n += 1000;
        // Rotate: shift the backups, rename the live file; the writer still holds it and
        // writes a few more lines into it before reopening.
        for i in (1..=round).rev() {
            let from = logs.path().join(format!("app.log.{i}"));
            let _ = std::fs::rename(&from, logs.path().join(format!("app.log.{}", i + 1)));
        }
        std::fs::rename(&p, logs.path().join("app.log.1")).unwrap();
        f.write_all(numbered("line", n, n + 100).as_bytes())
            .unwrap();
        n += 100;
        drop(f);
    }
    r.wait_count(n).await;
    // A little longer: nothing more may come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.stop().await;
    assert_exactly_once(&ev, "line ", n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_and_truncation_restart_from_zero() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("old", 0, 100)).unwrap();
    let r = start(&cfg("$DIR/app.log", ""), logs.path(), data.path());
    r.wait_count(100).await;
    // copytruncate: copy away (not watched here), truncate in place, write new lines.
    std::fs::copy(&p, logs.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    append(&p, numbered("new", 0, 50).as_bytes());
    r.wait_count(150).await;
    // Truncated and rewritten with more than before, different head: still detected.
    std::fs::write(&p, numbered("third", 0, 300)).unwrap();
    r.wait_count(450).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.stop().await;
    assert_exactly_once(&ev, "old ", 100);
    assert_exactly_once(&ev, "new ", 50);
    assert_exactly_once(&ev, "third ", 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_while_reading_reads_the_rest_then_forgets_the_file() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("line", 0, 20_000)).unwrap();
    let out = Collect::default();
    out.paused.store(true, Ordering::Release);
    let r = start_with(
        &cfg("$DIR/*.log", ""),
        logs.path(),
        data.path(),
        out.clone(),
    );
    // The reader is blocked on a full queue, mid-file.
    r.wait_status(&p, "partly read", |f| {
        f["read_offset"].as_u64().unwrap() > 0
    })
    .await;
    std::fs::remove_file(&p).unwrap();
    out.paused.store(false, Ordering::Release);
    r.wait_count(20_000).await;
    // Once everything is acknowledged, the removed file's state is cleaned.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while r.status()["files"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "state not cleaned: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ev = r.stop().await;
    assert_exactly_once(&ev, "line ", 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inode_reuse_is_a_new_file_read_from_zero() {
    // The file system decides when an inode is reused, so the reuse is made deterministic by
    // pointing the saved state at the new file's inode: exactly what the registry holds when
    // a file is deleted and a new one gets its inode while skiff is stopped.
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("old", 0, 100)).unwrap();
    let r = start(&cfg("$DIR/*.log", ""), logs.path(), data.path());
    r.wait_count(100).await;
    r.wait_status(&p, "acked", |f| f["acked_offset"] == f["size"])
        .await;
    r.stop().await;
    let old_ino = std::fs::metadata(&p).unwrap().ino();
    std::fs::remove_file(&p).unwrap();
    // New content, longer than the old offset, at the same path.
    std::fs::write(&p, numbered("fresh", 0, 200)).unwrap();
    let new_ino = std::fs::metadata(&p).unwrap().ino();
    let reg = std::fs::read_dir(data.path().join("registry/filestream"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&reg).unwrap();
    std::fs::write(
        &reg,
        text.replace(
            &format!("\"ino\":{old_ino},"),
            &format!("\"ino\":{new_ino},"),
        ),
    )
    .unwrap();
    assert_eq!(
        skiff_input_file::list_registry(data.path()).unwrap()[0].inode,
        new_ino
    );
    let r = start(&cfg("$DIR/*.log", ""), logs.path(), data.path());
    r.wait_count(200).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.stop().await;
    assert_exactly_once(&ev, "fresh ", 200);
    assert_eq!(numbers(&ev, "old ").len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_are_followed_only_when_asked() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(logs.path().join("real")).unwrap();
    let target = logs.path().join("real/app-2024.txt");
    std::fs::write(&target, numbered("linked", 0, 10)).unwrap();
    let link = logs.path().join("current.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::write(logs.path().join("plain.log"), numbered("plain", 0, 5)).unwrap();

    let r = start(&cfg("$DIR/*.log", ""), logs.path(), data.path());
    r.wait_count(5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.stop().await;
    assert_eq!(
        numbers(&ev, "linked ").len(),
        0,
        "symlinks: false ignores links"
    );

    let data2 = tempfile::tempdir().unwrap();
    let r = start(
        &cfg("$DIR/*.log", "prospector.scanner.symlinks: true\n"),
        logs.path(),
        data2.path(),
    );
    r.wait_count(15).await;
    let ev = r.stop().await;
    assert_exactly_once(&ev, "linked ", 10);
    let e = ev.iter().find(|e| e["message"] == "linked 000000").unwrap();
    assert_eq!(e["log"]["file"]["path"], link.to_str().unwrap());
    assert_eq!(
        e["log"]["file"]["inode"],
        std::fs::metadata(&target).unwrap().ino().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_line_is_cut_flagged_and_memory_stays_bounded() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("big.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        f.write_all(b"before\n").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..50 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\nafter\n").unwrap();
    }
    let max = 1 << 20;
    let r = start(
        &cfg("$DIR/*.log", &format!("message_max_bytes: {max}\n")),
        logs.path(),
        data.path(),
    );
    // Sample the reader's accounted memory while it works.
    let budget = r.ctx.budget.clone();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..2000 {
            for (name, used, _) in budget.snapshot() {
                if name == "input.file.readers" {
                    peak = peak.max(used);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        peak
    });
    r.wait_count(3).await;
    let peak = sampler.await.unwrap();
    let ev = r.stop().await;
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[0]["message"], "before");
    assert_eq!(ev[1]["message"].as_str().unwrap().len(), max);
    assert_eq!(ev[1]["log"]["flags"], serde_json::json!(["truncated"]));
    assert_eq!(ev[2]["message"], "after");
    assert_eq!(ev[2]["log"]["offset"], 7 + 50 * (1 << 20) + 1);
    // The documented bound per reader (docs/memory.md): the line being cut (at most `max`) plus
    // one read buffer (`buffer_size`, 16 KiB by default) and a terminator, plus the lines read
    // but not yet published (a batch, under 64 KiB). 50 MB never are.
    assert!(
        peak <= (max + 16 * 1024 + 2 + 64 * 1024) as u64,
        "reader held {peak} bytes, over message_max_bytes + buffer_size + 64 KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_files_under_one_glob() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for d in 0..10 {
        let dir = logs.path().join(format!("d{d}"));
        std::fs::create_dir(&dir).unwrap();
        for i in 0..1000 {
            std::fs::write(
                dir.join(format!("f{i}.log")),
                format!("file {:06}\n", d * 1000 + i),
            )
            .unwrap();
        }
    }
    let r = start(
        &cfg("$DIR/**/*.log", "close.on_state_change.inactive: 1s\n"),
        logs.path(),
        data.path(),
    );
    r.wait_count(10_000).await;
    let st = r.status();
    assert_eq!(st["files"].as_array().unwrap().len(), 10_000);
    let ev = r.stop().await;
    assert_exactly_once(&ev, "file ", 10_000);
    let reg = skiff_input_file::list_registry(data.path()).unwrap();
    assert_eq!(reg.len(), 10_000);
    assert!(reg.iter().all(|f| f.fully_shipped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_acknowledged_offset() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("line", 0, 1000)).unwrap();
    let r = start(&cfg("$DIR/*.log", ""), logs.path(), data.path());
    r.wait_count(1000).await;
    r.wait_status(&p, "acked", |f| f["acked_offset"] == f["size"])
        .await;
    r.stop().await;

    // Second run: the output refuses everything; lines are read but never acknowledged.
    append(&p, numbered("line", 1000, 1500).as_bytes());
    let out = Collect::default();
    out.paused.store(true, Ordering::Release);
    let r = start_opts(
        &cfg("$DIR/*.log", ""),
        logs.path(),
        data.path(),
        out,
        Duration::from_millis(100),
    );
    r.wait_status(&p, "read", |f| f["read_offset"] == f["size"])
        .await;
    let acked = r.status()["files"][0]["acked_offset"].clone();
    let ev = r.stop_abort().await;
    assert!(ev.is_empty());
    assert_eq!(acked, 1000 * 12);
    let reg = skiff_input_file::list_registry(data.path()).unwrap();
    assert_eq!(
        reg[0].acked_offset,
        1000 * 12,
        "only acknowledged offsets are saved"
    );

    // Third run: exactly the unacknowledged lines again, nothing before.
    let r = start(&cfg("$DIR/*.log", ""), logs.path(), data.path());
    r.wait_count(500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.stop().await;
    let got = numbers(&ev, "line ");
    assert_eq!(got, (1000..1500).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_offsets_are_saved_while_running_and_only_those() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::write(
            logs.path().join(format!("f{i:02}.log")),
            numbered(&format!("f{i:02}"), 0, 10),
        )
        .unwrap();
    }
    // The output refuses everything at first: every line is read (200 fit in the queue), none
    // acknowledged.
    let out = Collect::default();
    out.paused.store(true, Ordering::Release);
    let r = start_with(
        &cfg("$DIR/*.log", "registry.flush: 20ms\n"),
        logs.path(),
        data.path(),
        out.clone(),
    );
    for i in 0..20 {
        let p = logs.path().join(format!("f{i:02}.log"));
        r.wait_status(&p, "read", |f| f["read_offset"] == f["size"])
            .await;
    }
    // The files are registered (that needs a write) at offset 0: never at what was only read.
    wait_registry(data.path(), 20, "every file registered", |_| true).await;
    let writes = || {
        r.ctx
            .metrics
            .value(&skiff_metrics::names::REGISTRAR_WRITES)
            .unwrap_or(0.0)
    };
    // The counter moves just after the write it counts: give it the moment in between.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while writes() < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the registry was written but registrar.writes.success stayed at 0"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reg = skiff_input_file::list_registry(data.path()).unwrap();
    assert!(
        reg.iter().all(|f| f.acked_offset == 0),
        "only acknowledged offsets are saved: {reg:?}"
    );

    // Once delivered, the offsets reach the file while the input keeps running.
    out.paused.store(false, Ordering::Release);
    r.wait_count(200).await;
    wait_registry(data.path(), 20, "every file acknowledged to its end", |f| {
        f.acked_offset == f.size && f.size == 10 * 11
    })
    .await;
    let ev = r.stop().await;
    assert_exactly_once(&ev, "f00 ", 10);
    assert_eq!(ev.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_appended_to_an_idle_open_file_are_saved_while_running() {
    // An open reader with nothing to read drops out of the set of files looked at every
    // `registry.flush`; when it reads again, its new offsets must still reach the registry
    // while it runs. (The hand-back itself is unit-tested in `state.rs`; here the periodic
    // housekeeping pass would also save them, later: this checks the outcome.)
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("line", 0, 10)).unwrap();
    let r = start(
        &cfg("$DIR/*.log", "registry.flush: 20ms\n"),
        logs.path(),
        data.path(),
    );
    r.wait_count(10).await;
    let first = std::fs::metadata(&p).unwrap().len();
    wait_registry(data.path(), 1, "the first lines acknowledged", |f| {
        f.acked_offset == first
    })
    .await;
    for round in 1..=3usize {
        // Long enough for several commits to find the file settled.
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&p, numbered("line", round * 10, round * 10 + 10).as_bytes());
        let size = std::fs::metadata(&p).unwrap().len();
        r.wait_count(10 + round * 10).await;
        wait_registry(data.path(), 1, "the appended lines acknowledged", |f| {
            f.acked_offset == size
        })
        .await;
        // The case under test: the same reader, kept open, read the new lines.
        let st = r.status();
        let file = &st["files"][0];
        assert!(
            file["state"] == "reading" || file["state"] == "idle",
            "the reader should still be open: {st}"
        );
    }
    let ev = r.stop().await;
    assert_exactly_once(&ev, "line ", 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_no_notification_reports_is_found_by_the_scan() {
    // While inotify covers every watched directory, idle readers do not poll: they wait for a
    // notification. A write through a hard link in another directory notifies only that
    // directory's watchers, i.e. nobody here: a lost notification, for real. The periodic scan
    // must see the size change and wake the reader.
    let logs = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir_in(logs.path().parent().unwrap()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("line", 0, 5)).unwrap();
    let link = elsewhere.path().join("app.log");
    std::fs::hard_link(&p, &link).unwrap();
    let r = start(
        &cfg("$DIR/*.log", "close.on_state_change.inactive: 1h\n"),
        logs.path(),
        data.path(),
    );
    r.wait_count(5).await;
    r.wait_status(&p, "idle", |f| f["state"] == "idle").await;
    append(&link, numbered("line", 5, 10).as_bytes());
    r.wait_count(10).await;
    let ev = r.stop().await;
    assert_exactly_once(&ev, "line ", 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_registry_is_reported_and_the_input_keeps_running() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("app.log");
    std::fs::write(&p, numbered("line", 0, 100)).unwrap();
    let r = start(&cfg("$DIR/*.log", ""), logs.path(), data.path());
    r.wait_count(100).await;
    r.wait_status(&p, "acked", |f| f["acked_offset"] == f["size"])
        .await;
    r.stop().await;
    let reg = data.path().join("registry/filestream/t1.ndjson");
    let mut f = std::fs::OpenOptions::new().append(true).open(&reg).unwrap();
    f.write_all(
        b"\xff\xfe not json at all\n{\"input\":\"t1\",\"dev\":1,\"ino\":2,\"path\":\"/x\",\"offs",
    )
    .unwrap();
    drop(f);
    append(&p, numbered("line", 100, 150).as_bytes());
    let r = start(&cfg("$DIR/*.log", ""), logs.path(), data.path());
    r.wait_count(50).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.stop().await;
    // The good record survived: only the new lines were read.
    assert_eq!(numbers(&ev, "line "), (100..150).collect::<Vec<_>>());
    let listed = skiff_input_file::list_registry(data.path()).unwrap();
    assert_eq!(listed.len(), 1);
    // And the file was rewritten clean.
    let text = std::fs::read_to_string(&reg).unwrap();
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harvester_limit_serves_every_file_in_turn() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for i in 0..6 {
        std::fs::write(
            logs.path().join(format!("f{i}.log")),
            numbered(&format!("f{i}"), 0, 200),
        )
        .unwrap();
    }
    let r = start(
        &cfg("$DIR/*.log", "harvester_limit: 2\n"),
        logs.path(),
        data.path(),
    );
    r.wait_count(1200).await;
    let ev = r.stop().await;
    for i in 0..6 {
        assert_exactly_once(&ev, &format!("f{i} "), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_enabled_removes_shipped_files_only() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let p = logs.path().join("done.log");
    std::fs::write(&p, numbered("line", 0, 10)).unwrap();
    let r = start(
        &cfg(
            "$DIR/*.log",
            "close.on_state_change.inactive: 100ms\ndelete.enabled: true\ndelete.grace_period: 200ms\n",
        ),
        logs.path(),
        data.path(),
    );
    r.wait_count(10).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while p.exists() {
        assert!(std::time::Instant::now() < deadline, "file not deleted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ev = r.stop().await;
    assert_exactly_once(&ev, "line ", 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_input_maps_multiline_and_filters() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        logs.path().join("app.log"),
        "[1] start\n  at a\n  at b\n[2] debug noise\n[3] end\n",
    )
    .unwrap();
    let yaml = "type: log\npaths: [\"$DIR/*.log\"]\nscan_frequency: 100ms\nexclude_lines: ['debug']\nmultiline.pattern: '^\\['\nmultiline.negate: true\nmultiline.match: after\nmultiline.timeout: 100ms\n";
    let r = start(yaml, logs.path(), data.path());
    r.wait_count(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.stop().await;
    let msgs: Vec<&str> = ev.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(msgs, ["[1] start\n  at a\n  at b", "[3] end"]);
    assert_eq!(ev[0]["input"]["type"], "log");
    assert_eq!(ev[0]["log"]["flags"], serde_json::json!(["multiline"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encodings_are_decoded() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let text = "grüße\nnaïve\n";
    let utf16: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    std::fs::write(logs.path().join("a.log"), &utf16).unwrap();
    let r = start(
        &cfg("$DIR/*.log", "encoding: utf-16le\n"),
        logs.path(),
        data.path(),
    );
    r.wait_count(2).await;
    let ev = r.stop().await;
    assert_eq!(ev[0]["message"], "grüße");
    assert_eq!(ev[1]["message"], "naïve");
    assert_eq!(ev[1]["log"]["offset"], 12);

    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("b.log"), b"caf\xe9\n").unwrap();
    let r = start(
        &cfg("$DIR/*.log", "encoding: latin1\n"),
        logs.path(),
        data.path(),
    );
    r.wait_count(1).await;
    let ev = r.stop().await;
    assert_eq!(ev[0]["message"], "café");
}

#[test]
fn config_errors_are_clear() {
    let ctx = ctx(std::path::Path::new("/nonexistent"));
    let build = |yaml: &str| {
        let (node, common) = split(yaml);
        match (skiff_input_file::FILESTREAM.build)(&node, &common, &ctx) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    assert!(build("type: filestream\npaths: [/x]\n").contains("needs an `id`"));
    assert!(build("type: filestream\nid: a\n").contains("`paths` is required"));
    assert!(
        build("type: filestream\nid: a\npaths: [/x]\nencoding: klingon\n")
            .contains("unknown encoding")
    );
    assert!(
        build("type: filestream\nid: a\npaths: [/x]\nexclude_lines: ['(']\n")
            .contains("invalid regular expression")
    );
    assert!(
        build("type: filestream\nid: a\npaths: [/x]\nclose.on_state_change.inactiv: 1s\n")
            .contains("inactiv")
    );
    assert!(
        build("type: filestream\nid: a\npaths: [/x]\nparsers: [{multilin: {}}]\n")
            .contains("multilin")
    );
    assert_eq!(
        build("type: filestream\nid: a\npaths: [/x]\nclean_inactive: -1\n"),
        ""
    );
    assert_eq!(
        build("type: filestream\nid: a\npaths: [/x]\nregistry.flush: 0s\n"),
        ""
    );
    assert!(
        build("type: filestream\nid: a\npaths: [/x]\nregistry.flush: soon\n")
            .contains("registry.flush")
    );
    assert!(build("type: filestream\nid: a\npaths: [/x]\nregistry.flsh: 1s\n").contains("flsh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multiline_pattern_matching_every_line_is_capped() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("a.log"), numbered("line", 0, 20_000)).unwrap();
    let yaml = cfg(
        "$DIR/*.log",
        "message_max_bytes: 64KiB\nparsers:\n  - multiline: {type: pattern, pattern: '.', match: after, max_lines: 100, timeout: 200ms}\n",
    );
    let r = start(&yaml, logs.path(), data.path());
    r.wait_status(&logs.path().join("a.log"), "acked to the end", |f| {
        f["acked_offset"] == f["size"]
    })
    .await;
    let ev = r.stop().await;
    // Every line matches, so it all joins into one event: capped at 100 lines, flagged.
    assert_eq!(ev.len(), 1);
    let msg = ev[0]["message"].as_str().unwrap();
    assert_eq!(msg.lines().count(), 100);
    assert!(msg.len() <= 64 * 1024);
    let mut flags: Vec<&str> = ev[0]["log"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    flags.sort_unstable();
    assert_eq!(flags, ["multiline", "truncated"]);
}

#[test]
fn a_registry_of_100k_entries_loads() {
    // Correctness here; the load time is printed (and measured in benches/reader.rs).
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("registry/filestream");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    text.push_str("{\"input\":\"\",\"dev\":0,\"ino\":0,\"created\":1}\n");
    for i in 0..100_000u64 {
        text.push_str(&format!(
            "{{\"input\":\"big\",\"dev\":2049,\"ino\":{i},\"path\":\"/var/log/app/f{i}.log\",\"offset\":{o},\"size\":{o},\"fp_len\":1024,\"fp\":{h},\"phase\":\"closed\",\"changed\":1700000000}}\n",
            o = i * 100,
            h = i * 7919
        ));
    }
    std::fs::write(dir.join("big.ndjson"), text).unwrap();
    let t = std::time::Instant::now();
    let listed = skiff_input_file::list_registry(data.path()).unwrap();
    println!("100k registry entries listed in {:?}", t.elapsed());
    assert_eq!(listed.len(), 100_000);
    assert!(listed.iter().all(|f| f.input_id == "big"));
}
