//! TLS for the servers (and the client config servers use to call out).
//!
//! Client certificates are *requested* by the handshake but judged by
//! [`crate::authentication`]: the handshake only proves the peer holds the key of the
//! certificate it shows ([`RequestClientCert`]); whether that certificate is
//! signed by the right CA, unexpired and for client auth is decided per
//! request by a [`CaVerifier`], so a stranger's certificate earns a 401
//! `Status` like kube-apiserver gives, not a TLS alert.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no PEM certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("failed to parse PEM in {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("invalid CA certificate in {path}: {source}")]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("failed to build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("failed to build the client-certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("failed to generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The one crypto provider of the project: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Read every certificate of a PEM file (a CA bundle or a chain).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    parse_certs(&bytes, path)
}

/// Parse every certificate of PEM bytes; `origin` names them in errors.
pub fn parse_certs(pem: &[u8], origin: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: origin.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate(origin.into()));
    }
    Ok(certs)
}

/// Read a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    parse_key(&bytes, path)
}

/// Parse a PEM private key; `origin` names it in errors.
pub fn parse_key(pem: &[u8], origin: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| Error::Pem {
        path: origin.into(),
        reason: e.to_string(),
    })
}

/// A serving certificate chain and its key.
#[derive(Debug)]
pub struct ServingCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ServingCert {
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        Ok(Self {
            chain: read_certs(cert)?,
            key: read_key(key)?,
        })
    }

    /// Like kube's `--cert-dir`: a pair `<dir>/<name>.crt` and `.key` put
    /// there (a mounted Secret) is used when nobody else could have written
    /// it; else a self-signed pair for `hosts` is generated once and kept,
    /// key 0600, in a directory only this user can enter: `dir` itself when
    /// it is ours (created 0700, or narrowed to 0700), else `<dir>/<name>`,
    /// created for the purpose. A directory of another user — the root-owned
    /// 0777 emptyDir a kubelet makes for a pod running as non-root — is
    /// never changed.
    pub fn self_signed_in(dir: &Path, name: &str, hosts: &[String]) -> Result<Self> {
        let pair = |d: &Path| (d.join(format!("{name}.crt")), d.join(format!("{name}.key")));
        let (cert_path, key_path) = pair(dir);
        if cert_path.exists() && key_path.exists() && provided(dir) {
            return Self::load(&cert_path, &key_path);
        }
        let private = private_dir(dir, name)?;
        let (cert_path, key_path) = pair(&private);
        if cert_path.exists() && key_path.exists() {
            return Self::load(&cert_path, &key_path);
        }
        let (cert_pem, key_pem) = generate_self_signed(hosts)?;
        write_private(&key_path, key_pem.as_bytes())?;
        write_private(&cert_path, cert_pem.as_bytes())?;
        tracing::info!(dir = %private.display(), "generated a self-signed serving certificate");
        Self::load(&cert_path, &key_path)
    }
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `dir` is someone else's (a mounted Secret) and only its owner may write
/// it: files there were provided, not planted.
fn provided(dir: &Path) -> bool {
    fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() != euid() && m.mode() & 0o022 == 0)
}

/// A directory of ours, 0700, not a symbolic link: `dir` when it is ours or
/// does not exist yet, else a new `<dir>/<name>`.
fn private_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    if let Err(e) = fs::symlink_metadata(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(err(dir)(e));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err(dir))?;
    }
    let meta = fs::symlink_metadata(dir).map_err(err(dir))?;
    if meta.uid() == euid() {
        return ours_and_private(dir, &meta).map(|()| dir.to_owned());
    }
    let sub = dir.join(name);
    tracing::info!(
        dir = %dir.display(),
        owner = meta.uid(),
        "the certificate directory belongs to another user; keeping the serving pair in a subdirectory of our own"
    );
    match fs::DirBuilder::new().mode(0o700).create(&sub) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(&sub)(e)),
    }
    let meta = fs::symlink_metadata(&sub).map_err(err(&sub))?;
    if meta.uid() != euid() {
        return Err(err(&sub)(std::io::Error::other(format!(
            "exists and belongs to uid {}, not to this process's uid {}",
            meta.uid(),
            euid()
        ))));
    }
    ours_and_private(&sub, &meta).map(|()| sub)
}

/// `dir` (ours) is a real directory, narrowed to 0700 if it was wider.
fn ours_and_private(dir: &Path, meta: &fs::Metadata) -> Result<()> {
    let fail = |source| Error::Write {
        path: dir.to_owned(),
        source,
    };
    if !meta.file_type().is_dir() {
        return Err(fail(std::io::Error::other(
            "not a directory (symbolic links are not followed)",
        )));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

/// Generate a self-signed serving certificate for `hosts` (DNS names or IPs);
/// returns (cert PEM, key PEM).
pub fn generate_self_signed(hosts: &[String]) -> Result<(String, String)> {
    let mut names: Vec<String> = hosts.to_vec();
    if names.is_empty() {
        names = vec!["localhost".into(), "127.0.0.1".into()];
    }
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!(
            "{}@self-signed",
            hosts.first().map_or("localhost", String::as_str)
        ),
    );
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Write a file readable by its owner only (created 0600, atomically renamed).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|source| Error::Write {
            path: tmp.clone(),
            source,
        })?;
    f.write_all(bytes).map_err(|source| Error::Write {
        path: tmp.clone(),
        source,
    })?;
    f.sync_all().map_err(|source| Error::Write {
        path: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, path).map_err(|source| Error::Write {
        path: path.into(),
        source,
    })
}

fn root_store(cas: &[CertificateDer<'static>], origin: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca.clone()).map_err(|source| Error::BadCa {
            path: origin.into(),
            source,
        })?;
    }
    Ok(roots)
}

/// Verifies a client certificate chain against one CA bundle (time, chain,
/// client-auth usage), outside the handshake.
#[derive(Clone)]
pub struct CaVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    origin: PathBuf,
}

impl std::fmt::Debug for CaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaVerifier")
            .field("origin", &self.origin)
            .finish()
    }
}

impl CaVerifier {
    pub fn new(cas: &[CertificateDer<'static>], origin: &Path) -> Result<Self> {
        let roots = Arc::new(root_store(cas, origin)?);
        let inner = WebPkiClientVerifier::builder_with_provider(roots, provider()).build()?;
        Ok(Self {
            inner,
            origin: origin.into(),
        })
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        Self::new(&read_certs(path)?, path)
    }

    /// Ok when `chain[0]` is a valid client certificate issued under this CA.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> std::result::Result<(), String> {
        let (leaf, intermediates) = chain.split_first().ok_or("no client certificate")?;
        self.inner
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }
}

/// The handshake signature checks of a verifier with an `algs` field: the
/// same for both sides, whatever the verifier decides about certificates.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

/// The handshake side of client authentication: asks for a certificate
/// (hinting the given CAs), does not require one, accepts any the peer proves
/// it holds the key of. Judging it is [`CaVerifier`]'s job, per request.
#[derive(Debug)]
pub struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    pub fn new(cas: &[CertificateDer<'static>]) -> Self {
        let hints = cas
            .iter()
            .filter_map(|ca| {
                x509_parser::parse_x509_certificate(ca)
                    .ok()
                    .map(|(_, c)| DistinguishedName::from(c.subject().as_raw().to_vec()))
            })
            .collect();
        Self {
            hints,
            algs: algorithms(),
        }
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        // Judged per request by a CaVerifier; see the module docs.
        Ok(ClientCertVerified::assertion())
    }
    handshake_signatures!();
}

/// A server config: the serving certificate, client certificates requested
/// when `client_cas` is not empty, ALPN h2 and http/1.1.
pub fn server_config(
    serving: ServingCert,
    client_cas: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ServerConfig>> {
    let mut config = server_builder(client_cas)?.with_single_cert(serving.chain, serving.key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The part of a server config before its certificate: protocol versions
/// and client certificates (requested when `client_cas` is not empty).
fn server_builder(
    client_cas: &[CertificateDer<'static>],
) -> Result<rustls::ConfigBuilder<rustls::ServerConfig, rustls::server::WantsServerCert>> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    Ok(if client_cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(Arc::new(RequestClientCert::new(client_cas)))
    })
}

/// A serving certificate that can be replaced while the server runs: the
/// shim's CSR-issued certificate, rotated before it expires. New handshakes
/// get the newest pair; connections already open keep theirs.
#[derive(Debug)]
pub struct ReloadableCert {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl ReloadableCert {
    pub fn new(serving: ServingCert) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            current: std::sync::RwLock::new(Arc::new(certified_key(serving)?)),
        }))
    }

    /// Serve `serving` from the next handshake on.
    pub fn replace(&self, serving: ServingCert) -> Result<()> {
        let key = Arc::new(certified_key(serving)?);
        match self.current.write() {
            Ok(mut current) => *current = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
        Ok(())
    }

    /// The chain served now.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.get().cert.clone()
    }

    fn get(&self) -> Arc<rustls::sign::CertifiedKey> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.get())
    }
}

fn certified_key(serving: ServingCert) -> Result<rustls::sign::CertifiedKey> {
    Ok(rustls::sign::CertifiedKey::from_der(
        serving.chain,
        serving.key,
        &provider(),
    )?)
}

/// Like [`server_config`], with a certificate that can be replaced while
/// serving ([`ReloadableCert`]).
pub fn server_config_reloadable(
    serving: Arc<ReloadableCert>,
    client_cas: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ServerConfig>> {
    let mut config = server_builder(client_cas)?.with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How a client verifies the server it calls.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Verify against these CAs.
    Ca(Vec<CertificateDer<'static>>),
    /// Do not verify the server's certificate (`--kubelet-insecure-tls`):
    /// the handshake signature is still checked.
    InsecureSkipVerify,
}

/// A client config for calling a server (a node, in practice).
pub fn client_config(
    trust: ServerTrust,
    identity: Option<ServingCert>,
) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder =
        match trust {
            ServerTrust::Ca(cas) => {
                builder.with_root_certificates(root_store(&cas, Path::new("server CA"))?)
            }
            ServerTrust::InsecureSkipVerify => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipServerVerification {
                    algs: algorithms(),
                })),
        };
    // ALPN is left to the HTTP connector (hyper-rustls sets it from its own options).
    Ok(match identity {
        Some(id) => builder.with_client_auth_cert(id.chain, id.key)?,
        None => builder.with_no_client_auth(),
    })
}

#[derive(Debug)]
struct SkipServerVerification {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    handshake_signatures!();
}

/// The subject of a client certificate the way Kubernetes reads it:
/// CN is the user, each O a group.
pub fn subject_of(cert: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let subject = parsed.subject();
    let cn = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some((cn, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_cert_dir_of_ours_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let hosts = ["localhost".to_owned()];
        ServingCert::self_signed_in(&dir, "apiserver", &hosts).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("apiserver.key")), 0o600);
        // Existing and too open (as a kubelet makes an emptyDir): narrowed;
        // the pair is kept.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let before = fs::read(dir.join("apiserver.crt")).unwrap();
        ServingCert::self_signed_in(&dir, "apiserver", &hosts).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(fs::read(dir.join("apiserver.crt")).unwrap(), before);
    }

    #[test]
    fn a_cert_dir_of_another_user_is_left_alone() {
        // What the Deployment meets: an emptyDir owned by root, mode 0777,
        // for a server running as another user. Here the roles are swapped
        // (the test runs as root; the directory belongs to uid 65534).
        assert_eq!(
            euid(),
            0,
            "this test needs root to own a directory of another user (run the tests as root, as CI does)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let hosts = ["localhost".to_owned()];
        ServingCert::self_signed_in(&dir, "apiserver", &hosts).unwrap();
        assert_eq!(mode(&dir), 0o777, "not ours: unchanged");
        let sub = dir.join("apiserver");
        assert_eq!(mode(&sub), 0o700);
        assert!(sub.join("apiserver.crt").is_file());
        assert!(!dir.join("apiserver.crt").exists());
        // A pair planted in the shared directory is not trusted.
        fs::copy(sub.join("apiserver.crt"), dir.join("apiserver.crt")).unwrap();
        fs::copy(sub.join("apiserver.key"), dir.join("apiserver.key")).unwrap();
        assert!(!provided(&dir));
        // A subdirectory someone else made first is refused, by name.
        fs::remove_dir_all(&sub).unwrap();
        fs::create_dir(&sub).unwrap();
        std::os::unix::fs::chown(&sub, Some(65534), Some(65534)).unwrap();
        let err = ServingCert::self_signed_in(&dir, "apiserver", &hosts).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "failed to write {}: exists and belongs to uid 65534, not to this process's uid 0",
                sub.display()
            )
        );
    }

    #[tokio::test]
    async fn a_reloadable_certificate_is_swapped_for_new_handshakes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ca = crate::pki::Ca::new("swap-ca").unwrap();
        let serving = |cn: &str| {
            let pem = ca.server(cn, &["localhost"]).unwrap();
            ServingCert {
                chain: parse_certs(pem.cert.as_bytes(), Path::new("c")).unwrap(),
                key: parse_key(pem.key.as_bytes(), Path::new("k")).unwrap(),
            }
        };
        let reloadable = ReloadableCert::new(serving("first")).unwrap();
        let config = server_config_reloadable(reloadable.clone(), &[]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"x").await;
                    let _ = tls.shutdown().await;
                }
            }
        });
        let roots = parse_certs(ca.pem.cert.as_bytes(), Path::new("ca")).unwrap();
        // A new client each time: a resumed session would show the
        // certificate of the session it resumes.
        let served_cn = || {
            let client = Arc::new(client_config(ServerTrust::Ca(roots.clone()), None).unwrap());
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                let mut tls = tokio_rustls::TlsConnector::from(client)
                    .connect(name, tcp)
                    .await
                    .unwrap();
                let mut buf = Vec::new();
                let _ = tls.read_to_end(&mut buf).await;
                let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
                subject_of(&cert).unwrap().0
            }
        };
        assert_eq!(served_cn().await, "first");
        reloadable.replace(serving("second")).unwrap();
        assert_eq!(served_cn().await, "second");
        let (cn, _) = subject_of(&reloadable.chain()[0]).unwrap();
        assert_eq!(cn, "second");
    }
}
