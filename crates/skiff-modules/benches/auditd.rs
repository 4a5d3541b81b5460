//! Throughput of the auditd log fileset's pipeline on one core, against the same loop without
//! parsing (building the event document only) and against the nginx access pipeline, in the
//! same run: `cargo bench -p skiff-modules --bench auditd`. Numbers go to
//! docs/performance.md. The records are the kinds an audit.log is mostly made of (a SYSCALL
//! with its hex PROCTITLE, an EXECVE, a PAM user record with its quoted `msg='...'`), in the
//! forms of the Linux audit documentation.

mod common;

use skiff_modules::processor::FilesetProcessor;

const AUDIT: &[&str] = &[
    r#"type=SYSCALL msg=audit(1364481363.243:24287): arch=c000003e syscall=2 success=no exit=-13 a0=7fffd19c5592 a1=0 a2=7fffd19c4b50 a3=a items=1 ppid=2686 pid=3538 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=1 comm="cat" exe="/bin/cat" subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key="sshd_config""#,
    "type=PROCTITLE msg=audit(1364481363.243:24287): proctitle=636174002F6574632F7373682F737368645F636F6E666967",
    r#"type=EXECVE msg=audit(1364481363.243:24288): argc=3 a0="ls" a1="-l" a2=2F746D702F6D792066696C65"#,
    r#"type=USER_LOGIN msg=audit(1492896301.004:3163): pid=9391 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=login acct="root" exe="/usr/sbin/sshd" hostname=? addr=179.38.151.221 terminal=sshd res=failed'"#,
];

const NGINX: &[&str] = &[
    "89.160.20.156 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36\"",
];

fn main() {
    let (mb, bytes) = common::bench_bytes();
    let audit = FilesetProcessor::new("auditd", "log", None).unwrap_or_else(|e| panic!("{e}"));
    let nginx = FilesetProcessor::new("nginx", "access", Some("+00:00".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let base = common::throughput(AUDIT, bytes, None);
    let parsed = common::throughput(AUDIT, bytes, Some(&audit));
    let nginx_parsed = common::throughput(NGINX, bytes, Some(&nginx));
    println!(
        "auditd log, {mb} MiB: without parsing {base:.1} MB/s, with the pipeline {parsed:.1} MB/s ({:.3} of the baseline); nginx access pipeline {nginx_parsed:.1} MB/s (auditd/nginx {:.2})",
        parsed / base,
        parsed / nginx_parsed
    );
}
