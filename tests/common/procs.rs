//! Processes seen from outside, through /proc: a command's children, whether one is still alive, signals by
//! name. For the tests that kill `ticket` and require what it started to die with it.
use std::process::Command;
use std::time::{Duration, Instant};

/// The pids whose parent is `pid` (from /proc/PID/stat: "PID (COMMAND) STATE PPID …", the command may hold
/// spaces and parentheses).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        if rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.extend(e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()));
        }
    }
    out
}

/// The one child of `pid` (the test fails when there are none or several).
pub fn only_child(pid: u32, what: &str) -> u32 {
    let kids = children_of(pid);
    assert_eq!(kids.len(), 1, "one {what} expected under process {pid}: {kids:?}");
    kids[0]
}

/// The process's state letter (R running, S sleeping, T stopped, Z zombie, …); None once it is gone.
pub fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().next().map(String::from)
}

/// Running or stopped; a zombie (dead, not yet reaped by whoever inherited it) counts as gone.
pub fn alive(pid: u32) -> bool {
    state(pid).is_some_and(|s| s != "Z" && s != "X")
}

/// `kill -SIG PID`.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Fails the test (`what` says why) unless `pid` is gone within a minute; one still there is killed first, so
/// a failing test leaves no process behind.
pub fn require_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        signal(pid, "KILL");
        panic!("{what} (process {pid})");
    }
}
