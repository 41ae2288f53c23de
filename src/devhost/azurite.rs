//! Azurite, started on free loopback ports for the demo and the tests, and stopped on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::settings::{AZURITE_ACCOUNT, AZURITE_KEY};

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
}

impl Azurite {
    /// The `azurite` of `node_modules/.bin` under `root`, or `$AZURITE_BIN`.
    pub fn binary(root: &Path) -> PathBuf {
        std::env::var_os("AZURITE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("node_modules/.bin/azurite"))
    }

    /// Starts an in-memory Azurite; retries on new ports if another process took the ones
    /// picked (they are free when picked, not reserved).
    pub fn start(root: &Path) -> Result<Self, AzuriteError> {
        let binary = Self::binary(root);
        if !binary.exists() {
            return Err(AzuriteError::NotInstalled(binary));
        }
        let mut last = String::new();
        for _ in 0..3 {
            let [blob_port, queue_port, table_port] =
                free_ports::<3>().map_err(AzuriteError::Spawn)?;
            let mut command = Command::new(&binary);
            command
                .args(["--silent", "--inMemoryPersistence", "--disableTelemetry"])
                // The official SDK sends a newer x-ms-version than Azurite knows.
                .arg("--skipApiVersionCheck")
                .args([
                    "--blobHost",
                    "127.0.0.1",
                    "--queueHost",
                    "127.0.0.1",
                    "--tableHost",
                    "127.0.0.1",
                ])
                .args(["--blobPort", &blob_port.to_string()])
                .args(["--queuePort", &queue_port.to_string()])
                .args(["--tablePort", &table_port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            die_with_parent(&mut command);
            let child = command.spawn().map_err(AzuriteError::Spawn)?;
            let mut azurite = Self {
                child,
                blob_port,
                queue_port,
            };
            match azurite.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return Ok(azurite),
                Err(e) => last = e,
            }
        }
        Err(AzuriteError::NotReady(last))
    }

    fn wait_ready(&mut self, deadline: Duration) -> Result<(), String> {
        let started = Instant::now();
        let addrs =
            [self.blob_port, self.queue_port].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                return Err(format!("exited with {status}: {}", stderr.trim()));
            }
            let up = addrs
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
            if up {
                return Ok(());
            }
            if started.elapsed() > deadline {
                return Err(format!("ports not open after {deadline:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A full connection string (the well-known development key, not a secret).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};\
             BlobEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT};QueueEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT};",
            self.blob_port, self.queue_port
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
