//! The auditd fileset on audit.log records as the Linux audit daemon writes them.
//!
//! A real auditd cannot run in this test's container: it needs the kernel's audit netlink
//! socket and `CAP_AUDIT_CONTROL`, which containers do not get. The records below are the
//! examples of the Linux audit documentation (Red Hat's Security Guide, "Understanding Audit
//! Log Files": a SYSCALL record of `cat /etc/ssh/sshd_config` with its hex PROCTITLE, and an
//! EXECVE record), plus a failed sshd log-in (USER_LOGIN with `msg='... res=failed'`) in the
//! form sshd writes it through libaudit. The expected documents are worked out from the
//! documentation's meaning of each field and Filebeat's auditd pipeline
//! (filebeat/module/auditd/log/ingest/pipeline.yml), field by field; Filebeat's own documents
//! are checked by tests/corpus.rs.

use serde_json::{Map, Value, json};
use skiff_modules::{config, doc, processor::FilesetProcessor};

fn parse(line: &str) -> Map<String, Value> {
    let p = FilesetProcessor::new("auditd", "log", None).unwrap_or_else(|e| panic!("{e}"));
    let mut d = Map::new();
    doc::insert(&mut d, "message", Value::String(line.to_string()));
    p.run_doc(&mut d);
    doc::flatten(&d)
}

/// The parsed document's fields but the module metadata, compared as a whole so that a field
/// too many fails as well as one missing.
fn assert_fields(line: &str, expected: Value) {
    let mut got = parse(line);
    for k in [
        "event.module",
        "event.dataset",
        "fileset.name",
        "service.type",
    ] {
        assert!(got.remove(k).is_some(), "{k} missing");
    }
    assert_eq!(got.remove("event.original"), Some(Value::from(line)));
    let Value::Object(expected) = expected else {
        panic!("object")
    };
    assert_eq!(Value::Object(got), Value::Object(expected), "{line}");
}

#[test]
fn syscall_record_of_the_documentation() {
    assert_fields(
        r#"type=SYSCALL msg=audit(1364481363.243:24287): arch=c000003e syscall=2 success=no exit=-13 a0=7fffd19c5592 a1=0 a2=7fffd19c4b50 a3=a items=1 ppid=2686 pid=3538 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=1 comm="cat" exe="/bin/cat" subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key="sshd_config""#,
        json!({
            "@timestamp": "2013-03-28T14:36:03.243Z",
            "auditd.log.sequence": 24287,
            "auditd.log.syscall": "2",
            "auditd.log.success": "no",
            "auditd.log.a0": "7fffd19c5592",
            "auditd.log.a1": "0",
            "auditd.log.a2": "7fffd19c4b50",
            "auditd.log.a3": "a",
            "auditd.log.items": "1",
            "auditd.log.tty": "pts0",
            "auditd.log.ses": "1",
            "auditd.log.subj": "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023",
            "auditd.log.key": "sshd_config",
            // c000003e is AUDIT_ARCH_X86_64.
            "host.architecture": "x86_64",
            "process.exit_code": -13,
            "process.parent.pid": 2686,
            "process.pid": 3538,
            "process.name": "cat",
            "process.executable": "/bin/cat",
            "user.audit.id": "1000",
            "user.id": "1000",
            "user.group.id": "1000",
            "user.effective.id": "1000",
            "user.effective.group.id": "1000",
            "user.saved.id": "1000",
            "user.saved.group.id": "1000",
            "user.filesystem.id": "1000",
            "user.filesystem.group.id": "1000",
            // Call 2 (open by number) has no row of its own: go-libaudit's `*` row, and the
            // record type as the action.
            "event.kind": "event",
            "event.category": ["process"],
            "event.type": ["info"],
            "event.action": "syscall",
        }),
    );
}

#[test]
fn proctitle_in_hex_is_decoded() {
    // The documentation's PROCTITLE: `cat`, a NUL, `/etc/ssh/sshd_config`.
    assert_fields(
        "type=PROCTITLE msg=audit(1364481363.243:24287): proctitle=636174002F6574632F7373682F737368645F636F6E666967",
        json!({
            "@timestamp": "2013-03-28T14:36:03.243Z",
            "auditd.log.sequence": 24287,
            "auditd.log.proctitle": "cat^@/etc/ssh/sshd_config",
            "event.kind": "event",
            "event.action": "proctitle",
        }),
    );
}

#[test]
fn execve_arguments_become_process_args() {
    // a2 is `/tmp/my file`: auditd writes an argument with a space in hex.
    assert_fields(
        r#"type=EXECVE msg=audit(1364481363.243:24288): argc=3 a0="ls" a1="-l" a2=2F746D702F6D792066696C65"#,
        json!({
            "@timestamp": "2013-03-28T14:36:03.243Z",
            "auditd.log.sequence": 24288,
            "process.args": ["ls", "-l", "/tmp/my file"],
            "process.args_count": 3,
            "process.executable": "ls",
            "event.kind": "event",
            "event.action": "execve",
        }),
    );
}

#[test]
fn quoted_execve_arguments_are_text_even_when_they_look_like_hex() {
    // The record of go-libaudit's issue 13 (`useradd -u 3005 -m trainer5`): the kernel quotes
    // every argument it does not hex-encode, so "3005" is the number, not bytes 0x30 0x05.
    assert_fields(
        r#"type=EXECVE msg=audit(1507304439.922:1865): argc=5 a0="useradd" a1="-u" a2="3005" a3="-m" a4="trainer5""#,
        json!({
            "@timestamp": "2017-10-06T15:40:39.922Z",
            "auditd.log.sequence": 1865,
            "process.args": ["useradd", "-u", "3005", "-m", "trainer5"],
            "process.args_count": 5,
            "process.executable": "useradd",
            "event.kind": "event",
            "event.action": "execve",
        }),
    );
}

#[test]
fn failed_user_login() {
    assert_fields(
        r#"type=USER_LOGIN msg=audit(1492896301.004:3163): pid=9391 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=login acct="root" exe="/usr/sbin/sshd" hostname=? addr=179.38.151.221 terminal=sshd res=failed'"#,
        json!({
            "@timestamp": "2017-04-22T21:25:01.004Z",
            "auditd.log.sequence": 3163,
            "auditd.log.record_type": "USER_LOGIN",
            "auditd.log.op": "login",
            "auditd.log.ses": "4294967295",
            "auditd.log.subj": "system_u:system_r:sshd_t:s0-s0:c0.c1023",
            // go-libaudit copies auid to user (numeric: user.id) and acct to user.effective;
            // uid then cannot be renamed onto user.id and stays, as in Elasticsearch.
            "auditd.log.uid": "0",
            "user.id": "4294967295",
            "user.effective.name": "root",
            "user.name": "root",
            "user.audit.id": "4294967295",
            "user.terminal": "sshd",
            "process.pid": 9391,
            "process.executable": "/usr/sbin/sshd",
            "source.address": "179.38.151.221",
            "source.ip": "179.38.151.221",
            "event.kind": "event",
            "event.action": ["logged-in"],
            "event.category": ["authentication"],
            "event.type": ["start"],
            "event.outcome": "failed",
        }),
    );
}

#[test]
fn a_line_that_is_not_an_audit_record_keeps_its_message() {
    for (line, error) in [
        (
            "this is not an audit record",
            "Provided Grok expressions do not match",
        ),
        // A user message that is not key=value pairs fails Elasticsearch's kv processor too.
        (
            "type=USER_LOGIN msg=audit(1492896301.004:3163): pid=1 msg='lonely'",
            "field [auditd.log.sub_kv] does not contain value_split [=]",
        ),
    ] {
        let d = parse(line);
        assert_eq!(d.get("message"), Some(&Value::from(line)));
        let got = d
            .get("error.message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(got.starts_with(error), "{line}: {got}");
    }
}

#[test]
fn the_documentation_configuration_becomes_a_filestream_input() {
    // The example of Filebeat's auditd module documentation (`modules.d/auditd.yml`).
    let entry = json!({"module": "auditd", "log": {"enabled": true, "var.paths": ["/path/to/log/audit/audit.log*"]}});
    let inputs = config::expand(&[entry], "linux").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        inputs,
        [json!({
            "type": "filestream",
            "id": "module-auditd-log",
            "paths": ["/path/to/log/audit/audit.log*"],
            "exclude_files": ["\\.gz$"],
            "processors": [{"module_pipeline": {"module": "auditd", "fileset": "log"}}],
        })]
    );
    // Default paths on Linux; none elsewhere (Filebeat's manifest), so var.paths is needed.
    let default =
        config::expand(&config::from_flag("auditd"), "linux").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(default[0]["paths"], json!(["/var/log/audit/audit.log*"]));
    for os in ["darwin", "windows"] {
        let err = config::expand(&config::from_flag("auditd"), os).expect_err(os);
        assert!(err.to_string().contains("set var.paths"), "{err}");
    }
}
