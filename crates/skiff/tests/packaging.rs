//! The .deb and .rpm (issue 15): built by `packaging/build.sh` from the debug binary that
//! `cargo test` has just built (a release build would add many minutes on CI's 2 cores; the
//! packages' layout, scripts and unit do not depend on the profile), then
//!
//! * checked with `dpkg-deb -I`, `dpkg -c`, `lintian`, `rpm -qp` and `rpmlint`;
//! * the .deb installed on this machine with apt (systemd does not run here, so the unit is
//!   checked with `systemd-analyze verify` and its `ExecStart` line is started the way systemd
//!   would: as `User=skiff` with `SupplementaryGroups=adm` and the ambient capabilities, through
//!   `setpriv`), upgraded to a new revision (the edited configuration, the registry and the
//!   keystore stay), removed (data stays) and purged.
//!
//! Needs root, dpkg, apt, lintian, rpm, rpmlint, setpriv, systemd-analyze and the pinned
//! cargo-deb / cargo-generate-rpm: `scripts/ensure-test-deps` installs them. A missing one is
//! a failure that names it, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{free_port, http_get, sigterm, wait_with_timeout};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cmd`, failing the test with its output unless it succeeds.
fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (scripts/ensure-test-deps installs it)")
    });
    assert!(o.status.success(), "{cmd:?} failed:\n{}", both(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn both(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Packages {
    deb: PathBuf,
    deb2: PathBuf,
    rpm: PathBuf,
}

/// Revision 1 (.deb, .rpm) and revision 2 (.deb, for the upgrade), built once per run.
fn packages() -> &'static Packages {
    static P: OnceLock<Packages> = OnceLock::new();
    P.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("packages");
        let _ = std::fs::remove_dir_all(&out);
        let build = |revision: &str| -> Vec<PathBuf> {
            ok(Command::new(repo().join("packaging/build.sh"))
                .args([
                    "--profile",
                    "dev",
                    "--no-build",
                    "--revision",
                    revision,
                    "--out",
                ])
                .arg(&out))
            .lines()
            .map(PathBuf::from)
            .collect()
        };
        let one = build("1");
        let two = build("2");
        let find = |v: &[PathBuf], ext: &str| {
            v.iter()
                .find(|p| p.extension().is_some_and(|e| e == ext))
                .unwrap_or_else(|| panic!("build.sh printed no .{ext}: {v:?}"))
                .clone()
        };
        Packages {
            deb: find(&one, "deb"),
            deb2: find(&two, "deb"),
            rpm: find(&one, "rpm"),
        }
    })
}

#[test]
fn deb_metadata_contents_and_lintian() {
    let p = packages();
    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&p.deb));
    for want in [
        "Package: skiff",
        "Version: 0.1.0-1",
        "Section: admin",
        "adduser",
        "postinst",
        "postrm",
        "prerm",
        "conffiles",
    ] {
        assert!(info.contains(want), "dpkg-deb -I lacks {want:?}:\n{info}");
    }
    let tmp = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&p.deb)
        .arg(tmp.path()));
    let conffiles = std::fs::read_to_string(tmp.path().join("conffiles")).unwrap();
    assert!(
        conffiles.lines().any(|l| l == "/etc/skiff/skiff.yml"),
        "{conffiles}"
    );
    assert!(
        conffiles.lines().any(|l| l == "/etc/default/skiff"),
        "{conffiles}"
    );
    let postinst = std::fs::read_to_string(tmp.path().join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        !postinst.contains("#DEBHELPER#"),
        "the systemd snippets were not inserted"
    );
    assert!(postinst.contains("deb-systemd-helper"), "{postinst}");

    let list = ok(Command::new("dpkg").arg("-c").arg(&p.deb));
    for (path, mode) in [
        ("./usr/bin/skiff", "-rwxr-xr-x"),
        ("./etc/skiff/skiff.yml", "-rw-r-----"),
        ("./etc/default/skiff", "-rw-------"),
        ("./usr/lib/systemd/system/skiff.service", "-rw-r--r--"),
        ("./usr/share/doc/skiff/copyright", "-rw-r--r--"),
        ("./usr/share/doc/skiff/README.md", "-rw-r--r--"),
    ] {
        let line = list
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{list}"));
        assert!(line.starts_with(mode), "{path}: {line}");
        assert!(line.contains(" 0/0 "), "{path}: not root-owned: {line}");
    }
    assert!(
        !list.contains("./var/lib/skiff") && !list.contains("./var/log/skiff"),
        "state directories are made by postinst (owned by skiff), not shipped:\n{list}"
    );

    // lintian: no error and no warning, except the overrides in packaging/deb/lintian.
    let o = Command::new("lintian")
        .args(["--tag-display-limit", "0", "--fail-on", "error,warning"])
        .arg(&p.deb)
        .output()
        .expect("lintian (scripts/ensure-test-deps installs it)");
    assert!(o.status.success(), "lintian:\n{}", both(&o));
}

#[test]
fn rpm_contents_scripts_and_rpmlint() {
    let p = packages();
    let list = ok(Command::new("rpm")
        .args([
            "-qp",
            "--qf",
            "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\\n]",
        ])
        .arg(&p.rpm));
    for want in [
        "-rwxr-xr-x root:root /usr/bin/skiff",
        "-rw-r----- root:skiff /etc/skiff/skiff.yml",
        "-rw------- root:root /etc/sysconfig/skiff",
        "-rw-r--r-- root:root /usr/lib/systemd/system/skiff.service",
    ] {
        assert!(
            list.lines().any(|l| l == want),
            "rpm lacks {want:?}:\n{list}"
        );
    }
    let listed = ok(Command::new("rpm").arg("-qlp").arg(&p.rpm));
    assert!(listed.lines().any(|l| l == "/usr/bin/skiff"), "{listed}");
    let config = ok(Command::new("rpm")
        .args(["-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\\n]"])
        .arg(&p.rpm));
    assert!(
        config.lines().any(|l| l == "cn /etc/skiff/skiff.yml"),
        "skiff.yml must be %config(noreplace):\n{config}"
    );
    let scripts = ok(Command::new("rpm").args(["-qp", "--scripts"]).arg(&p.rpm));
    for want in [
        "useradd -r",
        "install -d -o skiff -g skiff -m 0750 /var/lib/skiff",
        "disable --now",
    ] {
        assert!(
            scripts.contains(want),
            "rpm scripts lack {want:?}:\n{scripts}"
        );
    }
    let info = ok(Command::new("rpm").args(["-qip"]).arg(&p.rpm));
    assert!(info.contains("Release     : 1"), "{info}");

    let o = Command::new("rpmlint")
        .arg("-r")
        .arg(repo().join("packaging/rpm/rpmlintrc"))
        .arg(&p.rpm)
        .output()
        .expect("rpmlint (scripts/ensure-test-deps installs it)");
    let text = both(&o);
    assert!(o.status.success(), "rpmlint:\n{text}");
    assert!(text.contains("0 errors"), "rpmlint:\n{text}");
}

/// The package purged, skiff's directories, user and group removed: the machine as before.
fn uninstall() {
    let _ = apt(&["purge", "skiff"]).output();
    let _ = std::fs::remove_dir_all("/var/lib/skiff");
    let _ = std::fs::remove_dir_all("/var/log/skiff");
    let _ = Command::new("userdel").arg("skiff").output();
    let _ = Command::new("groupdel").arg("skiff").output();
}

/// Uninstalls when the test ends, passed or failed.
struct Uninstall;
impl Drop for Uninstall {
    fn drop(&mut self) {
        uninstall();
    }
}

/// apt-get, waiting for the dpkg lock (other test runs may be installing packages).
fn apt(args: &[&str]) -> Command {
    let mut c = Command::new("apt-get");
    c.args(["-y", "-q", "-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    c
}

fn owner(path: &str) -> (String, String, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = |db: &str, id: u32| {
        ok(Command::new("getent").args([db, &id.to_string()]))
            .split(':')
            .next()
            .unwrap()
            .to_owned()
    };
    (
        name("passwd", m.uid()),
        name("group", m.gid()),
        m.permissions().mode() & 0o7777,
    )
}

/// Every file under `dir` with its contents (the registry, the keystore, meta.json).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// The unit's `Environment=` values and `ExecStart=` line with `$VAR`s expanded as systemd
/// does for unquoted `$VAR` (split into words).
fn exec_start(unit: &str) -> Vec<String> {
    let mut env = std::collections::HashMap::new();
    let mut exec = None;
    for line in unit.lines() {
        if let Some(v) = line.strip_prefix("Environment=") {
            let v = v.trim_matches('"');
            let (k, val) = v.split_once('=').unwrap();
            env.insert(k.to_owned(), val.to_owned());
        } else if let Some(v) = line.strip_prefix("ExecStart=") {
            exec = Some(v.to_owned());
        }
    }
    let exec = exec.expect("the unit has an ExecStart line");
    exec.split_whitespace()
        .flat_map(|w| match w.strip_prefix('$') {
            Some(var) => env[var]
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
            None => vec![w.to_owned()],
        })
        .collect()
}

/// What the unit says about `key` (one line).
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

#[test]
fn deb_installs_runs_as_the_service_upgrades_keeping_config_and_state_and_removes() {
    assert!(
        ok(Command::new("id").arg("-u")).trim() == "0",
        "installing the .deb needs root (CI and the dev machines run as root)"
    );
    let p = packages();
    uninstall(); // start from a machine without skiff's package, user and state
    let _cleanup = Uninstall;

    // Install.
    let o = apt(&["install"]).arg(&p.deb).output().unwrap();
    assert!(o.status.success(), "apt-get install:\n{}", both(&o));
    let version = ok(Command::new("/usr/bin/skiff").arg("version"));
    assert!(version.starts_with("skiff version 0.1.0"), "{version}");
    let passwd = ok(Command::new("getent").args(["passwd", "skiff"]));
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_ne!(fields[2], "0", "skiff must not be root");
    assert_eq!(fields[5], "/var/lib/skiff");
    assert_eq!(fields[6], "/usr/sbin/nologin");
    for dir in ["/var/lib/skiff", "/var/log/skiff"] {
        assert_eq!(owner(dir), ("skiff".into(), "skiff".into(), 0o750), "{dir}");
    }
    assert_eq!(
        owner("/etc/skiff/skiff.yml"),
        ("root".into(), "skiff".into(), 0o640)
    );
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/skiff.service").exists(),
        "like the Beats, the service is not enabled by the package"
    );
    let unit_path = "/usr/lib/systemd/system/skiff.service";
    let o = Command::new("systemd-analyze")
        .args(["verify", unit_path])
        .output()
        .expect("systemd-analyze (scripts/ensure-test-deps installs it)");
    assert!(o.status.success(), "systemd-analyze verify:\n{}", both(&o));
    let unit = std::fs::read_to_string(unit_path).unwrap();
    assert_eq!(unit_value(&unit, "User"), "skiff");
    assert_eq!(unit_value(&unit, "Restart"), "always");
    assert_eq!(unit_value(&unit, "NoNewPrivileges"), "true");
    assert_eq!(unit_value(&unit, "ProtectSystem"), "strict");
    assert_eq!(unit_value(&unit, "SupplementaryGroups"), "adm");
    assert_eq!(
        unit_value(&unit, "AmbientCapabilities"),
        "CAP_NET_RAW CAP_NET_ADMIN"
    );

    // The packaged configuration works out of the box, for the service user.
    let as_skiff = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=skiff",
            "--regid=skiff",
            "--groups=adm",
            "--inh-caps=+net_raw,+net_admin",
            "--ambient-caps=+net_raw,+net_admin",
            "--",
        ])
        .args(args);
        c
    };
    let check = ok(&mut as_skiff(&[
        "/usr/bin/skiff",
        "test",
        "config",
        "-c",
        "/etc/skiff/skiff.yml",
    ]));
    assert!(check.contains("Config OK"), "{check}");

    // The ExecStart line, run as systemd would run it (plus a free monitoring port).
    let mut argv = exec_start(&unit);
    let port = free_port();
    argv.extend(["-E".into(), format!("http.port={port}")]);
    assert_eq!(argv[0], "/usr/bin/skiff");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let child = as_skiff(&argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    let deadline = Instant::now() + Duration::from_secs(60);
    let events = Path::new("/var/lib/skiff/events");
    loop {
        let shipped = std::fs::read_dir(events)
            .into_iter()
            .flatten()
            .any(|e| e.unwrap().metadata().unwrap().len() > 0);
        if shipped && http_get(port, "/health").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not ship /var/log/*.log to {} within 60 s; its log: {:?}",
            events.display(),
            std::fs::read_dir("/var/log/skiff").map(|d| d.count())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim()
            .to_owned()
    };
    let uid = field("Uid:");
    assert!(
        !uid.starts_with("0\t") && uid != "0",
        "running as root: {uid}"
    );
    let amb = u64::from_str_radix(&field("CapAmb:"), 16).unwrap();
    assert_eq!(
        amb,
        (1 << 12) | (1 << 13),
        "CAP_NET_ADMIN and CAP_NET_RAW only"
    );
    assert!(
        std::fs::read_dir("/var/log/skiff").unwrap().count() > 0,
        "skiff's own log goes to /var/log/skiff"
    );
    sigterm(&child);
    let out = wait_with_timeout(child, Duration::from_secs(60));
    assert!(out.status.success(), "service stop:\n{}", both(&out));

    // The operator edits the configuration and adds a secret (as root: the keystore is given
    // to the service user).
    let edited = std::fs::read_to_string("/etc/skiff/skiff.yml")
        .unwrap()
        .replace("number_of_files: 7", "number_of_files: 5")
        + "# edited by the operator\n";
    std::fs::write("/etc/skiff/skiff.yml", &edited).unwrap();
    let mut add = Command::new("/usr/bin/skiff");
    add.args(["-c", "/etc/skiff/skiff.yml", "keystore", "create"]);
    ok(&mut add);
    let mut add = Command::new("/usr/bin/skiff");
    add.args([
        "-c",
        "/etc/skiff/skiff.yml",
        "keystore",
        "add",
        "ES_PWD",
        "--stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = add.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"pw").unwrap();
    }
    let o = wait_with_timeout(child, Duration::from_secs(30));
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(
        owner("/var/lib/skiff/skiff.keystore"),
        ("skiff".into(), "skiff".into(), 0o600),
        "the keystore belongs to the service user, and only to it"
    );
    let state = snapshot(Path::new("/var/lib/skiff"));
    assert!(
        state.iter().any(|(p, _)| !p.starts_with(events)
            && !p.ends_with("meta.json")
            && !p.ends_with("skiff.keystore")),
        "no registry was written: {:?}",
        state.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );

    // Upgrade to revision 2: no conffile prompt (stdin is closed), the edit stays, the state
    // is untouched.
    let o = apt(&["install"]).arg(&p.deb2).output().unwrap();
    assert!(o.status.success(), "upgrade:\n{}", both(&o));
    let v = ok(Command::new("dpkg-query").args(["-W", "-f=${Version}", "skiff"]));
    assert_eq!(v, "0.1.0-2");
    assert_eq!(
        std::fs::read_to_string("/etc/skiff/skiff.yml").unwrap(),
        edited
    );
    assert_eq!(
        owner("/etc/skiff/skiff.yml"),
        ("root".into(), "skiff".into(), 0o640)
    );
    assert!(
        snapshot(Path::new("/var/lib/skiff")) == state,
        "the upgrade changed /var/lib/skiff"
    );

    // Remove: the program goes, configuration and data stay.
    let o = apt(&["remove"]).arg("skiff").output().unwrap();
    assert!(o.status.success(), "remove:\n{}", both(&o));
    assert!(!Path::new("/usr/bin/skiff").exists());
    assert_eq!(
        std::fs::read_to_string("/etc/skiff/skiff.yml").unwrap(),
        edited
    );
    assert!(
        snapshot(Path::new("/var/lib/skiff")) == state,
        "remove touched the data"
    );

    // Purge: configuration and skiff's own logs go; the data directory is kept (read
    // positions, keystore, agent.id), as documented.
    let o = apt(&["purge"]).arg("skiff").output().unwrap();
    assert!(o.status.success(), "purge:\n{}", both(&o));
    assert!(!Path::new("/etc/skiff/skiff.yml").exists());
    assert!(!Path::new("/var/log/skiff").exists());
    assert!(
        snapshot(Path::new("/var/lib/skiff")) == state,
        "purge touched the data"
    );
}
