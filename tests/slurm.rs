//! `ticket sweep --slurm` on a real one-node Slurm cluster (Debian's slurmctld, slurmd, munge), started by
//! tools/slurm.sh and stopped at the end: the miniature sweep of tests/common/sweep.rs runs as a job array and
//! equals the `--local` run task for task (one ORT thread); a task cancelled mid-run (scancel) is resumed by
//! resubmitting; `ticket report` aggregates the sweep. When the cluster cannot be started the test fails.
mod common;
use common::sweep::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The cluster of tools/slurm.sh; stopped when dropped, whatever the test's outcome.
struct Cluster {
    script: PathBuf,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn start() -> Cluster {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/slurm.sh");
        let out = Command::new(&script).arg("start").output().expect("run tools/slurm.sh");
        assert!(
            out.status.success(),
            "tools/slurm.sh start failed (exit {:?}): the Slurm test needs Debian's slurmctld, slurmd, slurm-client and munge\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        // `export KEY=VALUE` lines: the cluster's config for sbatch, squeue and scancel.
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches(|c| c == '"' || c == '\'').to_string()))
            .collect::<Vec<_>>();
        assert!(
            env.iter().any(|(k, _)| k == "SLURM_CONF"),
            "tools/slurm.sh start printed no SLURM_CONF: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        Cluster { script, env }
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn ticket_json(&self, args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
        let mut c = self.command(env!("CARGO_BIN_EXE_ticket"));
        for a in args {
            c.arg(a.as_ref());
        }
        let out = c.arg("--json").output().unwrap();
        assert!(
            out.status.success() || out.status.code() == Some(1),
            "ticket {:?}: {}",
            c.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).arg("stop").status();
    }
}

fn states(r: &serde_json::Value) -> Vec<String> {
    r["tasks"].as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap().to_string()).collect()
}

/// Polls `ticket sweep --status` until no task is queued or running.
fn wait_idle(c: &Cluster, dir: &Path) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let s = states(&c.ticket_json(&[&"sweep", &"--status", &dir]));
        if !s.iter().any(|x| x == "queued" || x == "running") {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(600), "the job array did not finish in 10 minutes: {s:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn slurm_job_array_equals_local_run_and_resumes_a_cancelled_task() {
    let cluster = Cluster::start();
    let dir = tempdir();
    let root = dir.path();
    mini_data(root);
    // Long enough (a few seconds a task) to be cancelled while it trains.
    let spec = mini_spec(root, "mini_slurm", 24, "");
    let local = root.join("local");
    let r = ticket_json(&[&"sweep", &spec, &"-o", &local, &"--local", &"2"]);
    assert_eq!(states(&r), vec!["done"; 4]);

    let sweep = root.join("slurm");
    let dry = cluster.ticket_json(&[&"sweep", &spec, &"-o", &sweep, &"--slurm", &"--max-parallel", &"2", &"--dry-run"]);
    // Two arrays: the tasks that train level 0 (sparsity 0.5 of each seed), then, after them, the 80% tasks
    // that start from those dense models.
    let script = dry["script"].as_str().unwrap();
    assert!(script.contains("#SBATCH --array=0,2%2") && script.contains("sweep --task"), "{script}");
    assert!(script.contains("#SBATCH --array=1,3%2") && script.contains("#SBATCH --dependency=afterany:"), "{script}");
    assert!(!sweep.exists(), "--dry-run wrote {}", sweep.display());

    let sub = cluster.ticket_json(&[&"sweep", &spec, &"-o", &sweep, &"--slurm"]);
    assert_eq!(sub["submitted"][0]["indices"], serde_json::json!([0, 2]));
    assert_eq!(sub["submitted"][1]["indices"], serde_json::json!([1, 3]));
    let job_of = |i: usize| sub["submitted"][usize::from(i % 2 == 1)]["job_id"].as_str().unwrap().to_string();

    // Cancel the first task seen training level 1 (a checkpoint written, the run not finished; its level 0 done,
    // so the tasks sharing it find it whichever way the cancelled one ends).
    let tasks = task_dirs(&sweep);
    let t0 = Instant::now();
    let victim = loop {
        let s = states(&cluster.ticket_json(&[&"sweep", &"--status", &sweep]));
        let found = (0..4).find(|&i| {
            s[i] == "running" && tasks[i].join("run/level_1/state.json").exists() && !tasks[i].join("run/level_1/metrics.json").exists()
        });
        if let Some(i) = found {
            break i;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "no task was seen training: {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let job = job_of(victim);
    let cancel = cluster.command("scancel").arg(format!("{job}_{victim}")).status().unwrap();
    assert!(cancel.success(), "scancel {job}_{victim}");
    let after = wait_idle(&cluster, &sweep);
    assert_eq!(after[victim], "interrupted", "the cancelled task: {after:?}");
    assert_eq!(after.iter().filter(|s| *s == "done").count(), 3, "{after:?}");

    // Resubmitting the spec submits only the unfinished task, which resumes.
    let again = cluster.ticket_json(&[&"sweep", &spec, &"-o", &sweep, &"--slurm"]);
    assert_eq!(again["submitted"][0]["indices"], serde_json::json!([victim]));
    assert_eq!(wait_idle(&cluster, &sweep), vec!["done"; 4]);
    let log = std::fs::read_to_string(tasks[victim].join("log.txt")).unwrap();
    assert!(log.contains("# resume on"), "the cancelled task did not resume: {log}");

    // Task for task, the job array reached what the local executor reached.
    for (a, b) in task_dirs(&local).iter().zip(&tasks) {
        assert_same_task(a, b);
    }
    let rep = ticket_json(&[&"report", &sweep, &"-o", &root.join("report")]);
    assert_eq!(rep["groups"].as_array().unwrap().len(), 2, "{rep}");
    assert!(rep["groups"].as_array().unwrap().iter().all(|g| g["runs"].as_array().unwrap().len() == 2));
}
