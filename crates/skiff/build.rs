//! Records the commit and the build date for `skiff version`.
//!
//! The commit comes from `SKIFF_COMMIT` (set by packaging or CI from a source tarball), else
//! from `git` when the source is a checkout and git is installed, else "unknown": a build
//! without git still works. The date is `SOURCE_DATE_EPOCH` when set (reproducible builds, as
//! Debian's tools set it), else the time this script ran.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SKIFF_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = std::env::var("SKIFF_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SKIFF_BUILD_COMMIT={}", commit.trim());

    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let date = chrono::DateTime::from_timestamp(epoch, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SKIFF_BUILD_DATE={date}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `git rev-parse --short=12 HEAD`, and the rerun-if-changed lines that make a new commit
/// rebuild the version (only for files that exist: a missing one would rerun every build).
/// No `-dirty` mark: with rerun-if-changed set, cargo would not notice the tree changing.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let mut watch = vec!["HEAD".to_owned()];
    // A new commit on a branch moves the branch's ref, not HEAD.
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for p in watch {
        if let Some(path) = git(&["rev-parse", "--git-path", &p])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(commit)
}
