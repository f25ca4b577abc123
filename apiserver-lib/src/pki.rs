//! A small certificate authority (rcgen): CAs, serving and client
//! certificates as PEM. Used to bootstrap local stacks and by tests; the
//! servers themselves only read PEM files.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to generate or load a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error(
        "a client certificate carries at most {MAX_GROUPS} groups (O) here, {0} asked; use a bearer token for more"
    )]
    TooManyGroups(usize),
}

/// Groups one certificate can carry: rcgen keeps one value per attribute
/// type, so the second O is written under its OID as a custom type
/// (Kubernetes reads every O, whatever the encoding).
pub const MAX_GROUPS: usize = 2;

/// A certificate and its key, PEM encoded.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A CA able to issue certificates.
#[derive(Debug)]
pub struct Ca {
    pub pem: Pem,
    issuer: Issuer<'static, KeyPair>,
}

const ORGANIZATION_OID: [u64; 4] = [2, 5, 4, 10];

fn dn(cn: &str, orgs: &[&str]) -> Result<DistinguishedName, Error> {
    if orgs.len() > MAX_GROUPS {
        return Err(Error::TooManyGroups(orgs.len()));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(first) = orgs.first() {
        dn.push(DnType::OrganizationName, *first);
    }
    if let Some(second) = orgs.get(1) {
        dn.push(DnType::CustomDnType(ORGANIZATION_OID.to_vec()), *second);
    }
    Ok(dn)
}

impl Ca {
    /// A new self-signed CA valid for ten years.
    pub fn new(cn: &str) -> Result<Self, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn, &[])?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        let pem = Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        let issuer = Issuer::new(params, key);
        Ok(Self { pem, issuer })
    }

    /// A CA from its PEM certificate and key (to issue more certificates later).
    pub fn from_pem(cert: &str, key: &str) -> Result<Self, Error> {
        let key_pair = KeyPair::from_pem(key)?;
        let issuer = Issuer::from_ca_cert_pem(cert, key_pair)?;
        Ok(Self {
            pem: Pem {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            issuer,
        })
    }

    /// A client certificate: CN is the user, each O a group (Kubernetes' rule).
    pub fn client(&self, cn: &str, groups: &[&str]) -> Result<Pem, Error> {
        let (not_before, not_after) = a_year();
        self.client_valid(cn, groups, not_before, not_after)
    }

    /// A client certificate with explicit validity (to make expired ones).
    pub fn client_valid(
        &self,
        cn: &str,
        groups: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Pem, Error> {
        self.issue(
            cn,
            groups,
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            (not_before, not_after),
        )
    }

    /// A certificate for both serving (`hosts`) and client authentication
    /// (CN user, O groups): what a node agent or aggregated server presents.
    pub fn server_and_client(
        &self,
        cn: &str,
        groups: &[&str],
        hosts: &[&str],
    ) -> Result<Pem, Error> {
        self.issue(
            cn,
            groups,
            hosts,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            a_year(),
        )
    }

    /// A serving certificate for DNS names and IP addresses.
    pub fn server(&self, cn: &str, hosts: &[&str]) -> Result<Pem, Error> {
        self.issue(
            cn,
            &[],
            hosts,
            &[ExtendedKeyUsagePurpose::ServerAuth],
            a_year(),
        )
    }

    /// A certificate signed by this CA: subject CN and O, subject
    /// alternative names `hosts`, extended key `usages`, valid `(from, to)`.
    fn issue(
        &self,
        cn: &str,
        groups: &[&str],
        hosts: &[&str],
        usages: &[ExtendedKeyUsagePurpose],
        (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    ) -> Result<Pem, Error> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name = dn(cn, groups)?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = usages.to_vec();
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// A PKCS#10 certificate signing request, parsed and its signature checked
/// (the `spec.request` of a `CertificateSigningRequest`).
#[derive(Debug, Clone)]
pub struct SigningRequest {
    params: rcgen::CertificateSigningRequestParams,
}

/// What a signing request asks to be named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedNames {
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<std::net::IpAddr>,
    /// Names of other kinds (e-mail, URI, other names): never granted here.
    pub others: Vec<String>,
}

impl SigningRequest {
    /// Parse a PEM `CERTIFICATE REQUEST` and check its self-signature.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        Ok(Self {
            params: rcgen::CertificateSigningRequestParams::from_pem(pem)?,
        })
    }

    /// The names the request asks for.
    pub fn names(&self) -> RequestedNames {
        let mut out = RequestedNames {
            common_name: self
                .params
                .params
                .distinguished_name
                .get(&DnType::CommonName)
                .map(|v| match v {
                    rcgen::DnValue::PrintableString(s) => s.as_str().to_owned(),
                    rcgen::DnValue::Utf8String(s) => s.clone(),
                    other => format!("{other:?}"),
                }),
            ..RequestedNames::default()
        };
        for san in &self.params.params.subject_alt_names {
            match san {
                rcgen::SanType::DnsName(d) => out.dns_names.push(d.as_str().to_owned()),
                rcgen::SanType::IpAddress(ip) => out.ip_addresses.push(*ip),
                other => out.others.push(format!("{other:?}")),
            }
        }
        out
    }
}

impl Ca {
    /// Issue a serving certificate for `request`: its subject, names and
    /// public key, nothing else of it (the usages are digital signature, key
    /// encipherment and server auth, whatever it asked; never a CA), valid
    /// from `not_before` to `not_after`. Returns the certificate as PEM.
    pub fn sign_serving_request(
        &self,
        request: &SigningRequest,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<String, Error> {
        let mut req = request.params.clone();
        req.params.is_ca = IsCa::ExplicitNoCa;
        req.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        req.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        req.params.not_before = not_before;
        req.params.not_after = not_after;
        req.params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()));
        req.params.use_authority_key_identifier_extension = true;
        Ok(req.signed_by(&self.issuer)?.pem())
    }
}

/// A positive 16-byte random serial number.
fn random_serial() -> [u8; 16] {
    let mut out: [u8; 16] = rand::random();
    out[0] &= 0x7f;
    out
}

/// A new key pair and a PKCS#10 request for a serving certificate of
/// `common_name` with the subject alternative names `hosts` (DNS names or
/// IPs), asking for the usages of a kubelet's serving certificate. Returns
/// (request PEM, key PEM).
pub fn serving_request(common_name: &str, hosts: &[String]) -> Result<(String, String), Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name = dn(common_name, &[])?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// From an hour ago to a year from now.
fn a_year() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(365))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_reloaded_from_pem_issues_verifiable_certificates() {
        let ca = Ca::new("ca").unwrap();
        let again = Ca::from_pem(&ca.pem.cert, &ca.pem.key).unwrap();
        let client = again.client("alice", &["devs"]).unwrap();
        let roots =
            crate::tls::parse_certs(ca.pem.cert.as_bytes(), std::path::Path::new("ca")).unwrap();
        let verifier = crate::tls::CaVerifier::new(&roots, std::path::Path::new("ca")).unwrap();
        let chain = crate::tls::parse_certs(client.cert.as_bytes(), std::path::Path::new("client"))
            .unwrap();
        assert!(verifier.verify(&chain).is_ok());
        let (cn, groups) = crate::tls::subject_of(&chain[0]).unwrap();
        assert_eq!((cn.as_str(), groups), ("alice", vec!["devs".to_string()]));

        let two = ca.client("sa", &["g1", "g2"]).unwrap();
        let chain =
            crate::tls::parse_certs(two.cert.as_bytes(), std::path::Path::new("two")).unwrap();
        let (_, groups) = crate::tls::subject_of(&chain[0]).unwrap();
        assert_eq!(
            groups,
            vec!["g1".to_string(), "g2".to_string()],
            "both groups survive"
        );
        assert!(matches!(
            ca.client("x", &["a", "b", "c"]),
            Err(Error::TooManyGroups(3))
        ));
    }

    #[test]
    fn a_serving_request_is_signed_with_the_signer_s_usages_only() {
        let ca = Ca::new("shim-ca").unwrap();
        let hosts = ["node-1".to_owned(), "10.0.0.7".to_owned()];
        let (csr, key) = serving_request("system:node:node-1", &hosts).unwrap();
        let request = SigningRequest::from_pem(&csr).unwrap();
        assert_eq!(
            request.names(),
            RequestedNames {
                common_name: Some("system:node:node-1".into()),
                dns_names: vec!["node-1".into()],
                ip_addresses: vec!["10.0.0.7".parse().unwrap()],
                others: vec![],
            }
        );
        let now = OffsetDateTime::now_utc();
        let cert = ca
            .sign_serving_request(
                &request,
                now - Duration::minutes(5),
                now + Duration::hours(1),
            )
            .unwrap();
        let chain =
            crate::tls::parse_certs(cert.as_bytes(), std::path::Path::new("issued")).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        assert!(!parsed.is_ca());
        // The issued certificate and the request's key serve together.
        let serving = crate::tls::ServingCert {
            chain,
            key: crate::tls::parse_key(key.as_bytes(), std::path::Path::new("key")).unwrap(),
        };
        crate::tls::ReloadableCert::new(serving).unwrap();
        // Garbage is refused.
        assert!(
            SigningRequest::from_pem(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            )
            .is_err()
        );
    }
}
