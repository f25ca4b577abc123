//! Running a server under test, in process ([`InProcess`]) or as its binary
//! ([`Process`]), with the certificates and files it is given, and waiting
//! until it answers ([`wait_ready`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use kcr_testkit::harness::{InProcess, wait_ready};
//!
//! # async fn demo(listener: tokio::net::TcpListener) -> Result<(), String> {
//! let port = listener.local_addr().map_err(|e| e.to_string())?.port();
//! let server = InProcess::spawn("a server", |shutdown| async move {
//!     let _ = (listener, shutdown); // serve on `listener` until `shutdown` resolves
//! });
//! wait_ready(port, None, "/readyz", Duration::from_secs(10), || Ok(())).await?;
//! server.stop().await;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apiserver_lib::pki::Pem;
use apiserver_lib::tls::{self, ServerTrust, ServingCert};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::oneshot;

/// How long a server may take to stop once told to.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificates of PEM text (panics on bad PEM: the test made it).
pub fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    tls::parse_certs(pem.as_bytes(), Path::new("test")).expect("PEM certificates")
}

/// A certificate and its key, as a server or client presents them.
pub fn identity(pem: &Pem) -> ServingCert {
    ServingCert {
        chain: certs(&pem.cert),
        key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).expect("a PEM private key"),
    }
}

/// Write `text` to `dir/name`; its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
    p
}

/// A TCP port on 127.0.0.1 nothing listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A server running in this process until [`InProcess::stop`].
#[derive(Debug)]
pub struct InProcess {
    name: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    /// Spawn `serve(shutdown)`: it serves until `shutdown` resolves, then drains.
    pub fn spawn<F, Fut>(name: &'static str, serve: F) -> Self
    where
        F: FnOnce(BoxFuture<'static, ()>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async {
            let _ = stopped.await;
        })));
        Self {
            name,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Tell it to stop and wait (it must stop within [`STOP_TIMEOUT`]).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(STOP_TIMEOUT, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("{} failed: {e}", self.name),
                Err(_) => panic!("{} did not stop within {STOP_TIMEOUT:?}", self.name),
            }
        }
    }
}

/// A server binary running as a child process, its stderr kept in a file;
/// killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Start `cmd` with stdin and stdout closed and stderr to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> std::io::Result<Self> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        Ok(Self {
            child,
            log: log.to_owned(),
        })
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with its log when it has exited.
    pub fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("exited ({status}):\n{}", self.log())),
            Err(e) => Err(format!("cannot be waited for: {e}")),
        }
    }

    /// Send SIGTERM and wait up to [`STOP_TIMEOUT`] for it to exit; its
    /// exit status.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus, String> {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0))
            .ok_or("no such process")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .map_err(|e| format!("kill -TERM: {e}"))?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("still running {STOP_TIMEOUT:?} after SIGTERM"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `GET https://localhost:PORT{path}` answers 200 (the server's
/// certificate verified against `server_ca`, or not verified without one),
/// at most `within`; `alive` is asked between tries and ends the wait with
/// its error (a process that exited).
pub async fn wait_ready(
    port: u16,
    server_ca: Option<&str>,
    path: &str,
    within: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let trust = match server_ca {
        Some(ca) => ServerTrust::Ca(certs(ca)),
        None => ServerTrust::InsecureSkipVerify,
    };
    let cfg = tls::client_config(trust, None).map_err(|e| e.to_string())?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let deadline = Instant::now() + within;
    loop {
        alive()?;
        let req = http::Request::get(format!("https://localhost:{port}{path}"))
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let last = match client.request(req).await {
            Ok(resp) if resp.status() == http::StatusCode::OK => return Ok(()),
            Ok(resp) => {
                let code = resp.status();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_default();
                format!("{code}: {body}")
            }
            Err(e) => format!("{e:?}"),
        };
        if Instant::now() > deadline {
            return Err(format!("not ready within {within:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
