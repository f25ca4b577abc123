//! `--bind-address`/`--address`, `--secure-port`/`--port`, the serving
//! certificate and `--cert-dir` (`k8s.io/apiserver/pkg/server/options`
//! `SecureServingOptions`).

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::ServerFlags;
use crate::tls::{self, ServingCert};

/// Where and how a server serves HTTPS.
#[derive(Debug, Clone, clap::Args)]
pub struct SecureServingOptions<F: ServerFlags> {
    #[arg(
        long = F::BIND_ADDRESS,
        value_name = "IP",
        default_value = "0.0.0.0",
        help = "The IP address to serve on (0.0.0.0 or :: for all interfaces)"
    )]
    pub bind_address: IpAddr,

    #[arg(
        long = F::PORT,
        value_name = "PORT",
        default_value = F::DEFAULT_PORT,
        help = "The port to serve HTTPS on (0 picks a free port, logged at start)"
    )]
    pub port: u16,

    /// Serving certificate (PEM, may hold the chain). Without it and --tls-private-key-file, a
    /// self-signed pair is generated and kept in --cert-dir.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,

    #[arg(
        long,
        value_name = "DIR",
        default_value = F::DEFAULT_CERT_DIR,
        help = F::CERT_DIR_HELP
    )]
    pub cert_dir: Option<PathBuf>,

    #[arg(skip)]
    flags: PhantomData<F>,
}

/// The self-signed pair used without `--tls-cert-file`: its base name, the
/// directory when `--cert-dir` has no fixed default and was not given, and
/// the host names it is for.
#[derive(Debug, Clone)]
pub struct SelfSigned<'a> {
    pub name: &'a str,
    pub default_dir: Option<&'a Path>,
    pub hosts: &'a [String],
}

/// What a server listens with (`SecureServingInfo`).
#[derive(Debug, Clone)]
pub struct SecureServingInfo {
    pub listen: SocketAddr,
    pub tls: Arc<rustls::ServerConfig>,
}

impl SecureServingInfo {
    /// Serve on `listen` with a self-signed pair for `hosts` generated in
    /// memory and kept nowhere (no client certificates asked for).
    pub fn ephemeral(listen: SocketAddr, hosts: &[String]) -> tls::Result<Self> {
        let (cert, key) = tls::generate_self_signed(hosts)?;
        let serving = ServingCert {
            chain: tls::parse_certs(cert.as_bytes(), Path::new("self-signed"))?,
            key: tls::parse_key(key.as_bytes(), Path::new("self-signed"))?,
        };
        Ok(Self {
            listen,
            tls: tls::server_config(serving, &[])?,
        })
    }
}

impl<F: ServerFlags> SecureServingOptions<F> {
    /// Every problem with the flags.
    pub fn validate(&self) -> Vec<String> {
        if self.tls_cert_file.is_some() != self.tls_private_key_file.is_some() {
            vec!["--tls-cert-file and --tls-private-key-file go together".to_owned()]
        } else {
            Vec::new()
        }
    }

    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }

    /// The serving certificate: the files, else the self-signed pair kept in
    /// `--cert-dir` (see [`ServingCert::self_signed_in`]).
    pub fn serving_cert(&self, self_signed: &SelfSigned<'_>) -> tls::Result<ServingCert> {
        match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => ServingCert::load(cert, key),
            _ => {
                let dir = self
                    .cert_dir
                    .as_deref()
                    .or(self_signed.default_dir)
                    .unwrap_or(Path::new("."));
                ServingCert::self_signed_in(dir, self_signed.name, self_signed.hosts)
            }
        }
    }

    /// The serving info; client certificates signed by `client_cas` are asked for.
    pub fn apply(
        &self,
        self_signed: &SelfSigned<'_>,
        client_cas: &[CertificateDer<'static>],
    ) -> tls::Result<SecureServingInfo> {
        let serving = self.serving_cert(self_signed)?;
        Ok(SecureServingInfo {
            listen: self.listen(),
            tls: tls::server_config(serving, client_cas)?,
        })
    }
}
