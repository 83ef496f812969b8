//! `webhooks serve` and `webhooks worker` as real child processes, so a scenario can SIGKILL
//! them. Their stderr is kept (and echoed with `TEST_LOG=1`) to assert on and to report.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use crate::receiver::test_ca;

const BIN: &str = env!("CARGO_BIN_EXE_webhooks");

pub struct Process {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

/// The settings every scenario's processes share. A short attempt timeout keeps the lease
/// of a killed process (2 × timeout + 10 s) short, so a scenario waits seconds, not a minute.
fn command(kind: &str, database_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg(kind)
        .env("DATABASE_URL", database_url)
        .env("WEBHOOKS_ALLOW_HOSTS", "localhost,127.0.0.1")
        .env("WEBHOOKS_EXTRA_CA", &test_ca().pem_path)
        .env("WEBHOOKS_ATTEMPT_TIMEOUT", "2s")
        .env("WEBHOOKS_RETRY_SCHEDULE", "1s,2s,4s,8s,16s")
        .env("WEBHOOKS_MAIL_DIR", std::env::temp_dir().join("webhooks-reliability-mail"))
        .env("WEBHOOKS_LOG_FORMAT", "text")
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

impl Process {
    /// `webhooks serve` on 127.0.0.1:`port`; returns once it listens and its dispatcher runs.
    pub fn serve(name: &str, database_url: &str, port: u16) -> Process {
        let mut cmd = command("serve", database_url);
        cmd.env("WEBHOOKS_LISTEN", format!("127.0.0.1:{port}"));
        Process::spawn(name, cmd, &["listening", "dispatcher started"])
    }

    /// `webhooks worker`; returns once its dispatcher runs.
    pub fn worker(name: &str, database_url: &str) -> Process {
        Process::spawn(name, command("worker", database_url), &["dispatcher started"])
    }

    fn spawn(name: &str, mut cmd: Command, ready: &[&'static str]) -> Process {
        let mut child = cmd.spawn().expect("start the webhooks binary");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let (lines, label, echo) = (log.clone(), name.to_owned(), std::env::var("TEST_LOG").is_ok());
        let mut waiting: Vec<&'static str> = ready.to_vec();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[{label}] {line}");
                }
                waiting.retain(|w| !line.contains(w));
                if waiting.is_empty() {
                    let _ = tx.send(());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let process = Process { child, log };
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            panic!("{name} did not start; its log:\n{}", process.log().join("\n"));
        }
        process
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Log lines containing `needle`.
    pub fn count_in_log(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// SIGKILL: no cleanup, leases and uncommitted work stay behind. Returns once it is dead.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the graceful exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_hard();
    }
}
