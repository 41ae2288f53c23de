//! Azurite, started on free loopback ports for the demo and the tests, and stopped on drop;
//! in memory, or on disk (`--location`) so that it can be stopped and started again on the
//! same ports with its data, as storage that goes away for a moment and comes back.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::settings::azurite_connection_string;

#[derive(Debug, thiserror::Error)]
pub enum AzuriteError {
    #[error("Azurite is not installed at {0} (run `npm ci` in the repository, or `make azurite`)")]
    NotInstalled(PathBuf),
    #[error("cannot start Azurite: {0}")]
    Spawn(std::io::Error),
    #[error("Azurite did not start: {0}")]
    NotReady(String),
}

pub struct Azurite {
    child: Child,
    pub blob_port: u16,
    pub queue_port: u16,
    pub table_port: u16,
    /// Where the data is kept, when on disk.
    location: Option<PathBuf>,
    root: PathBuf,
}

impl Azurite {
    /// The `azurite` of `node_modules/.bin` under `root`, or `$AZURITE_BIN`.
    pub fn binary(root: &Path) -> PathBuf {
        std::env::var_os("AZURITE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("node_modules/.bin/azurite"))
    }

    /// Starts an in-memory Azurite on ports the OS assigns (`--blobPort 0`), read back from
    /// the lines Azurite prints once it listens: no port is picked here and then taken by
    /// another process before Azurite binds it.
    pub fn start(root: &Path) -> Result<Self, AzuriteError> {
        Self::spawn(root, None, [0, 0, 0])
    }

    /// Starts Azurite keeping its data under `location` (`--location`), so that
    /// [`Self::restart`] brings it back with its blobs and queues.
    pub fn start_persistent(root: &Path, location: &Path) -> Result<Self, AzuriteError> {
        Self::spawn(root, Some(location.to_path_buf()), [0, 0, 0])
    }

    /// Stops Azurite and starts it again on the same ports with the same data. It is stopped
    /// with SIGTERM, which lets it save: Azurite's metadata store (LokiJS) saves on an
    /// interval and on shutdown, so a SIGKILL loses writes it had acknowledged, which Azure
    /// storage never does. Only a persistent Azurite keeps its data across this.
    pub fn restart(&mut self) -> Result<(), AzuriteError> {
        self.stop();
        self.start_again()
    }

    /// Starts a stopped Azurite again on its ports with its data (see [`Self::restart`]).
    pub fn start_again(&mut self) -> Result<(), AzuriteError> {
        let next = Self::spawn(
            &self.root,
            self.location.clone(),
            [self.blob_port, self.queue_port, self.table_port],
        )?;
        *self = next;
        Ok(())
    }

    /// SIGTERM, then wait for the exit (SIGKILL after 20 s).
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(
        root: &Path,
        location: Option<PathBuf>,
        ports: [u16; 3],
    ) -> Result<Self, AzuriteError> {
        let binary = Self::binary(root);
        if !binary.exists() {
            return Err(AzuriteError::NotInstalled(binary));
        }
        let mut command = Command::new(&binary);
        match &location {
            Some(dir) => {
                command.arg("--location").arg(dir);
            }
            None => {
                command.arg("--inMemoryPersistence");
            }
        }
        let [blob, queue, table] = ports.map(|p| p.to_string());
        command
            .arg("--disableTelemetry")
            // The official SDK sends a newer x-ms-version than Azurite knows.
            .arg("--skipApiVersionCheck")
            .args(["--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1"])
            .args(["--tableHost", "127.0.0.1"])
            .args([
                "--blobPort",
                &blob,
                "--queuePort",
                &queue,
                "--tablePort",
                &table,
            ])
            .args(Self::extra_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(AzuriteError::Spawn)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| AzuriteError::NotReady("no stdout to read the ports from".into()))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Reads every line for the life of the process, so Azurite never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Once the ports are known nobody listens: keep draining anyway.
                let _ = tx.send(line);
            }
        });
        let mut azurite = Self {
            child,
            blob_port: 0,
            queue_port: 0,
            table_port: 0,
            location,
            root: root.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while azurite.blob_port == 0 || azurite.queue_port == 0 || azurite.table_port == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    for (service, port) in [
                        ("Blob", &mut azurite.blob_port),
                        ("Queue", &mut azurite.queue_port),
                        ("Table", &mut azurite.table_port),
                    ] {
                        if let Some(p) = listening_port(&line, service) {
                            *port = p;
                        }
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(AzuriteError::NotReady(azurite.exit_reason()))
                }
            }
            if let Ok(Some(_)) = azurite.child.try_wait() {
                return Err(AzuriteError::NotReady(azurite.exit_reason()));
            }
            if Instant::now() >= deadline {
                return Err(AzuriteError::NotReady(
                    "no listening ports after 30 s".into(),
                ));
            }
        }
        Ok(azurite)
    }

    /// `AZURITE_ARGS`: extra arguments, e.g. `--debug /tmp/azurite.log` to count requests.
    fn extra_args() -> Vec<String> {
        std::env::var("AZURITE_ARGS")
            .map(|a| a.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }

    fn exit_reason(&mut self) -> String {
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        format!("Azurite exited: {}", stderr.trim())
    }

    /// A full connection string (the well-known development key, not a secret).
    pub fn connection_string(&self) -> String {
        azurite_connection_string(self.blob_port, self.queue_port)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of "Azurite <service> service is successfully listening at http://host:port".
fn listening_port(line: &str, service: &str) -> Option<u16> {
    let rest = line.strip_prefix(&format!(
        "Azurite {service} service is successfully listening at "
    ))?;
    rest.trim().rsplit(':').next()?.parse().ok()
}

/// Ports the OS says are free now, all distinct.
pub fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// On Linux, the child gets SIGTERM when this process dies, even by SIGKILL: no orphaned
/// emulator or handler after a crashed test.
pub fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_from_azurite_output() {
        let line = "Azurite Blob service is successfully listening at http://127.0.0.1:43327";
        assert_eq!(listening_port(line, "Blob"), Some(43327));
        assert_eq!(listening_port(line, "Queue"), None);
        assert_eq!(
            listening_port(
                "Azurite Blob service is starting at http://127.0.0.1:0",
                "Blob"
            ),
            None
        );
    }
}
