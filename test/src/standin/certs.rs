//! The stand-in's PKI in `--cert-dir`, created on first start and reused
//! afterwards, laid out like kubeadm's `/etc/kubernetes/pki`:
//!
//! | file | what |
//! |---|---|
//! | `ca.crt`/`.key` | server CA (kubeconfigs trust it) |
//! | `apiserver.crt`/`.key` | serving certificate for `127.0.0.1`, `localhost`, `kubernetes.default.svc` |
//! | `client-ca.crt`/`.key` | client CA (`--client-ca-file`): CN = user, O = groups |
//! | `front-proxy-ca.crt`/`.key` | front-proxy CA (`--requestheader-client-ca-file`) |
//! | `front-proxy-client.crt`/`.key` | the aggregator's client certificate, CN `front-proxy-client` |
//!
//! Keys are 0600, the directory 0700. Kubeconfigs embed the server CA and a
//! client certificate issued by the client CA (or a bearer token).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::tls::{self, ServingCert};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

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
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error("failed to generate or load a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("failed to parse the private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(transparent)]
    Pki(#[from] apiserver_lib::pki::Error),
    #[error("{0} does not hold the server URL; start the stand-in first or pass --server")]
    NoServer(PathBuf),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// CN of the aggregator's client certificate (`--requestheader-allowed-names`).
pub const FRONT_PROXY_CLIENT_CN: &str = "front-proxy-client";
/// Hosts the serving certificate is valid for.
pub const SERVING_HOSTS: [&str; 5] = [
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
];
/// File in the cert dir holding the URL the running stand-in serves on.
pub const SERVER_URL_FILE: &str = "server-url";

/// The PEM material of a cert dir.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub server_ca: String,
    pub serving: Pem,
    pub client_ca: Pem,
    pub front_proxy_ca: String,
    pub front_proxy_client: Pem,
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })
}

fn write_pem(dir: &Path, name: &str, pem: &Pem) -> Result<()> {
    tls::write_private(&dir.join(format!("{name}.key")), pem.key.as_bytes())?;
    tls::write_private(&dir.join(format!("{name}.crt")), pem.cert.as_bytes())?;
    Ok(())
}

fn read_pem(dir: &Path, name: &str) -> Result<Pem> {
    Ok(Pem {
        cert: read(&dir.join(format!("{name}.crt")))?,
        key: read(&dir.join(format!("{name}.key")))?,
    })
}

impl Pki {
    /// Load the cert dir, generating whatever is missing (all of it, when
    /// `ca.crt` is missing).
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.into(),
            source,
        })?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            Error::Write {
                path: dir.into(),
                source,
            }
        })?;
        if !dir.join("ca.crt").exists() {
            let server_ca = Ca::new("kube-apiserver-standin-ca")?;
            let client_ca = Ca::new("kube-apiserver-standin-client-ca")?;
            let proxy_ca = Ca::new("kube-apiserver-standin-front-proxy-ca")?;
            write_pem(dir, "ca", &server_ca.pem)?;
            write_pem(
                dir,
                "apiserver",
                &server_ca.server("kube-apiserver", &SERVING_HOSTS)?,
            )?;
            write_pem(dir, "client-ca", &client_ca.pem)?;
            write_pem(dir, "front-proxy-ca", &proxy_ca.pem)?;
            write_pem(
                dir,
                "front-proxy-client",
                &proxy_ca.client(FRONT_PROXY_CLIENT_CN, &[])?,
            )?;
        }
        Ok(Self {
            dir: dir.into(),
            server_ca: read(&dir.join("ca.crt"))?,
            serving: read_pem(dir, "apiserver")?,
            client_ca: read_pem(dir, "client-ca")?,
            front_proxy_ca: read(&dir.join("front-proxy-ca.crt"))?,
            front_proxy_client: read_pem(dir, "front-proxy-client")?,
        })
    }

    /// The serving certificate for rustls.
    pub fn serving_cert(&self) -> Result<ServingCert> {
        pem_identity(&self.serving, &self.dir.join("apiserver.crt"))
    }

    /// The front-proxy client identity for rustls.
    pub fn front_proxy_identity(&self) -> Result<ServingCert> {
        pem_identity(
            &self.front_proxy_client,
            &self.dir.join("front-proxy-client.crt"),
        )
    }

    /// A client certificate from the client CA: CN `user`, one O per group
    /// (at most `pki::MAX_GROUPS`).
    pub fn issue_client(&self, user: &str, groups: &[String]) -> Result<Pem> {
        let ca = Ca::from_pem(&self.client_ca.cert, &self.client_ca.key)?;
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        Ok(ca.client(user, &groups)?)
    }

    /// Record the URL the stand-in serves on (for the `kubeconfig` subcommand).
    pub fn write_server_url(&self, url: &str) -> Result<()> {
        let path = self.dir.join(SERVER_URL_FILE);
        tls::write_private(&path, url.as_bytes())?;
        Ok(())
    }

    /// The URL recorded by a running (or last) stand-in.
    pub fn server_url(&self) -> Result<String> {
        let path = self.dir.join(SERVER_URL_FILE);
        let url = fs::read_to_string(&path).map_err(|_| Error::NoServer(path.clone()))?;
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::NoServer(path));
        }
        Ok(url.to_owned())
    }
}

fn pem_identity(pem: &Pem, origin: &Path) -> Result<ServingCert> {
    Ok(ServingCert {
        chain: tls::parse_certs(pem.cert.as_bytes(), origin)?,
        key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).map_err(|e| Error::Key {
            path: origin.into(),
            reason: e.to_string(),
        })?,
    })
}

/// Standard base64 (RFC 4648, padded), as kubeconfig `*-data` fields want.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How a kubeconfig's user authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    Certificate(Pem),
    Token(String),
}

/// A kubeconfig for `user` against `server`, trusting `server_ca`.
pub fn kubeconfig(
    server: &str,
    server_ca: &str,
    user: &str,
    credentials: &Credentials,
    namespace: &str,
) -> String {
    let user_block = match credentials {
        Credentials::Certificate(pem) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            base64(pem.cert.as_bytes()),
            base64(pem.key.as_bytes())
        ),
        Credentials::Token(token) => {
            format!("    token: {}\n", serde_json::Value::from(token.as_str()))
        }
    };
    let user_json = serde_json::Value::from(user);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user_json}\n  user:\n{user_block}contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: {user_json}\n    namespace: {namespace}\ncurrent-context: standin\n",
        ca = base64(server_ca.as_bytes()),
    )
}

/// Write a kubeconfig file (0600), creating its directory.
pub fn write_kubeconfig(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| Error::Write {
            path: parent.into(),
            source,
        })?;
    }
    tls::write_private(path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn cert_dir_is_created_once_and_issues_clients() {
        let d = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(d.path()).unwrap();
        let b = Pki::load_or_create(d.path()).unwrap();
        assert_eq!(a.server_ca, b.server_ca);
        let pem = a.issue_client("viewer", &["team".into()]).unwrap();
        let two = a.issue_client("sa", &["g1".into(), "g2".into()]).unwrap();
        let two = tls::parse_certs(two.cert.as_bytes(), Path::new("x")).unwrap();
        assert_eq!(
            tls::subject_of(&two[0]).unwrap().1,
            vec!["g1".to_string(), "g2".to_string()]
        );
        assert!(
            a.issue_client("x", &["a".into(), "b".into(), "c".into()])
                .is_err()
        );
        let chain = tls::parse_certs(pem.cert.as_bytes(), Path::new("x")).unwrap();
        let verifier = tls::CaVerifier::new(
            &tls::parse_certs(a.client_ca.cert.as_bytes(), Path::new("ca")).unwrap(),
            Path::new("ca"),
        )
        .unwrap();
        verifier.verify(&chain).unwrap();
        assert_eq!(
            tls::subject_of(&chain[0]).unwrap(),
            ("viewer".to_string(), vec!["team".to_string()])
        );
        let mode = std::fs::metadata(d.path().join("client-ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
