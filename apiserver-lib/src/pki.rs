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
}
