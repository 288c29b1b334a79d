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

/// Any of its threads running or stopped. A zombie (dead, not yet reaped by whoever inherited it) counts as
/// gone, but only once every thread is: a killed process's main thread shows Z while its other threads are still
/// exiting, and until the last one has, the process still holds its files (and the locks on them).
pub fn alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    // A thread's id reads like a pid in /proc.
    let tids = tasks.filter_map(|t| t.ok()?.file_name().to_str()?.parse::<u32>().ok());
    tids.into_iter().any(|tid| ticket::fsio::process_state(tid).is_some_and(|s| s != 'Z' && s != 'X'))
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
