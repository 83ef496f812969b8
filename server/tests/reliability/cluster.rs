//! A private PostgreSQL cluster for one scenario: created with initdb in a temporary
//! directory, on a free port of 127.0.0.1, stopped and started at will, removed at the end.
//! The shared server on :5432 is never touched.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub struct PrivateCluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

/// `PG_BIN_DIR`, else the newest `/usr/lib/postgresql/*/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql), or PG_BIN_DIR")
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no initdb under /usr/lib/postgresql/*/bin").1
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// initdb and postgres refuse to run as root: run them as `postgres` then.
fn pg_command(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        cmd
    } else {
        Command::new(bin.join(tool))
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivateCluster {
    pub fn create() -> PrivateCluster {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("webhooks-reliability-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&dir);
                    c
                },
                "chown the cluster directory",
            );
        }
        let mut initdb = pg_command(&bin, "initdb");
        initdb.arg("-D").arg(&dir).args(["-U", "postgres", "--auth=trust", "--no-sync"]);
        run(initdb, "initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = PrivateCluster { bin, dir, port };
        cluster.start();
        cluster
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let mut ctl = pg_command(&self.bin, "pg_ctl");
        // fsync off: a test cluster, thrown away; the outage is a stop, not a power cut.
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        ctl.arg("-D").arg(&self.dir).arg("-l").arg(self.dir.join("server.log")).args(["-w", "-o", &options, "start"]);
        run(ctl, "pg_ctl start");
    }

    /// Stops the server: `fast` ends open sessions (as a restart or failover does).
    pub fn stop(&self, mode: &str) {
        let mut ctl = pg_command(&self.bin, "pg_ctl");
        ctl.arg("-D").arg(&self.dir).args(["-w", "-m", mode, "stop"]);
        run(ctl, "pg_ctl stop");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let mut ctl = pg_command(&self.bin, "pg_ctl");
        ctl.arg("-D").arg(&self.dir).args(["-w", "-m", "immediate", "stop"]);
        let _ = ctl.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
