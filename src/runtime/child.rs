//! Starting the processes that do a command's work for it (the training worker, a sweep's `ticket imp` tasks)
//! so that they cannot outlive it. One left behind when `ticket` is killed (kill -9, the OOM killer) goes on in
//! a folder whose owner is gone: an orphaned training worker finishes its checkpoint save in a run folder whose
//! lock died with its parent, while a resume started at once reads it; an orphaned sweep task keeps its run
//! locked, so the sweep's rerun finds the task "in use" and records it as failed. Linux's parent-death signal
//! kills such a child with its parent instead.
//!
//! That signal follows the *thread* that forked, not the process: a child started from a thread that then ends
//! (a library user's thread, a local sweep's runner threads) would be killed with it. So every such child is
//! forked by one thread that lives as long as the process. (A pre-exec hook makes std fork rather than
//! posix_spawn: a copy of the page tables, once per worker or task, nothing next to a training run.)
use std::io;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::Mutex;

type Request = (Command, Sender<io::Result<Child>>);

/// The forking thread's queue, started on first use.
static FORKER: Mutex<Option<Sender<Request>>> = Mutex::new(None);

/// Spawns `command` as a child that is killed (SIGKILL) when this process dies.
pub fn spawn_tied(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs between fork and exec and calls only prctl and getppid, both
        // async-signal-safe; it allocates nothing (the error is a raw OS error).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl; the child is then someone else's already.
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
    let (reply, answer) = mpsc::channel();
    {
        let mut forker = FORKER.lock().unwrap_or_else(|p| p.into_inner());
        if forker.is_none() {
            let (tx, rx) = mpsc::channel::<Request>();
            std::thread::Builder::new().name("child-forker".into()).spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })?;
            *forker = Some(tx);
        }
        let sent = forker.as_ref().expect("set above").send((command, reply));
        sent.map_err(|_| io::Error::other("the thread that starts child processes has ended"))?;
    }
    answer.recv().map_err(|_| io::Error::other("the thread that starts child processes has ended"))?
}

/// [`Command::status`] for a tied child: run to its end with the stdio `command` sets.
pub fn status_tied(command: Command) -> io::Result<ExitStatus> {
    spawn_tied(command)?.wait()
}

/// [`Command::output`] for a tied child: run to its end, stdin empty, stdout and stderr captured.
pub fn output_tied(mut command: Command) -> io::Result<Output> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    spawn_tied(command)?.wait_with_output()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A child asked for from a thread that then ends keeps running (the parent-death signal would kill it with
    // the thread that forked, were that the asking thread); it is not tied to this thread's life, only the
    // process's.
    #[test]
    fn a_child_outlives_the_thread_that_started_it() {
        let mut child = std::thread::spawn(|| {
            let mut sleep = Command::new("sleep");
            sleep.arg("30");
            spawn_tied(sleep)
        })
        .join()
        .expect("joined")
        .expect("spawned");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let running = child.try_wait().expect("status").is_none();
        let _ = child.kill();
        let _ = child.wait();
        assert!(running, "the child died with the thread that asked for it");
    }
}
