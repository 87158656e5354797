//! Certificate status from a CRL (RFC 5280 §5, §6.3), parsed once and kept as a serial index
//! so that a cached 10^5-entry partition CRL answers in a hash lookup.
//!
//! Checked when loading: issuer name = anchor subject, AKI = anchor SKI (if both present),
//! signature by the anchor's key (sha256WithRSAEncryption), no delta CRL, every critical
//! CRL and entry extension understood. Checked per certificate: freshness (thisUpdate not in
//! the future, nextUpdate present and not passed), scope (the issuingDistributionPoint's
//! fullName shares a name with the certificate's cRLDistributionPoints, URI or
//! directoryName; onlyCACerts / onlySomeReasons / indirectCRL / attribute CRLs refused),
//! then the serial lookup; `certificateHold` counts as not valid.

use std::collections::HashMap;

use ::time::OffsetDateTime;
use x509_parser::oid_registry as oids;
use x509_parser::prelude::*;

use crate::cert::fmt_time;
use crate::Error;

/// Tolerated clock difference for thisUpdate in the future.
pub const SKEW: ::time::Duration = ::time::Duration::minutes(5);

/// The certificate status learned from a CRL or OCSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked {
        date: OffsetDateTime,
        reason: Option<u8>,
    },
}

impl Status {
    /// `Ok` only for good; revoked and held become their errors.
    pub fn into_result(self) -> Result<(), Error> {
        match self {
            Status::Good => Ok(()),
            Status::Revoked {
                date,
                reason: Some(6),
            } => Err(Error::Held {
                date: fmt_time(date),
            }),
            Status::Revoked { date, reason } => Err(Error::Revoked {
                date: fmt_time(date),
                reason: reason
                    .map(|c| {
                        policies::Reason::from_code(c)
                            .map_or_else(|| format!("code {c}"), |r| r.as_str().to_string())
                    })
                    .unwrap_or_else(|| "unspecified".into()),
            }),
        }
    }
}

/// A name of a distribution point, comparable between a certificate and a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpName {
    Uri(String),
    /// DER of the Name.
    Directory(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Entry {
    date: OffsetDateTime,
    reason: Option<u8>,
}

/// A verified CRL, indexed by serial.
#[derive(Debug, Clone)]
pub struct RevocationList {
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    /// fullName of the issuingDistributionPoint; empty for a CRL without one (complete CRL).
    scope: Vec<DpName>,
    entries: HashMap<Vec<u8>, Entry>,
}

const OID_DELTA_CRL: &str = "2.5.29.27";

impl RevocationList {
    /// Parses (DER or PEM) and verifies a CRL against the trust anchor.
    pub fn load(input: &[u8], root: &X509Certificate<'_>) -> Result<RevocationList, Error> {
        let der = crate::cert::der_from_pem_or_der(input);
        let (rest, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| Error::CrlSyntax(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Error::CrlSyntax("trailing bytes after the CRL".into()));
        }
        if crl.issuer().as_raw() != root.subject().as_raw() {
            return Err(Error::CrlIssuer(format!(
                "issuer {} is not {}",
                crl.issuer(),
                root.subject()
            )));
        }
        if crl.signature_algorithm.algorithm != oids::OID_PKCS1_SHA256WITHRSA {
            return Err(Error::CrlSyntax(format!(
                "signature algorithm {} (only sha256WithRSAEncryption)",
                crl.signature_algorithm.algorithm.to_id_string()
            )));
        }
        crl.verify_signature(root.public_key())
            .map_err(|_| Error::CrlSignature)?;
        let mut scope = Vec::new();
        for ext in crl.extensions() {
            let id = ext.oid.to_id_string();
            match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    if let (Some(k), Some(s)) = (&aki.key_identifier, crate::cert::ski(root)) {
                        if k.0 != s {
                            return Err(Error::CrlIssuer(format!(
                                "authorityKeyIdentifier {} is not the anchor's {}",
                                hex::encode(k.0),
                                hex::encode(s)
                            )));
                        }
                    }
                }
                ParsedExtension::IssuingDistributionPoint(idp) => {
                    if idp.only_contains_ca_certs {
                        return Err(Error::CrlScope(
                            "the CRL covers CA certificates only".into(),
                        ));
                    }
                    if idp.only_some_reasons.is_some() {
                        return Err(Error::CrlScope(
                            "onlySomeReasons CRLs are not supported".into(),
                        ));
                    }
                    if idp.indirect_crl {
                        return Err(Error::CrlScope("indirect CRLs are not supported".into()));
                    }
                    if idp.only_contains_attribute_certs {
                        return Err(Error::CrlScope("attribute-certificate CRL".into()));
                    }
                    match &idp.distribution_point {
                        Some(DistributionPointName::FullName(names)) => {
                            scope.extend(names.iter().filter_map(dp_name))
                        }
                        Some(DistributionPointName::NameRelativeToCRLIssuer(_)) => {
                            return Err(Error::CrlScope(
                                "nameRelativeToCRLIssuer is not supported".into(),
                            ))
                        }
                        None => {}
                    }
                }
                ParsedExtension::ParseError { error } => {
                    return Err(Error::CrlSyntax(format!("extension {id}: {error}")));
                }
                _ if id == OID_DELTA_CRL => {
                    return Err(Error::CrlCriticalExtension(format!("{id} (delta CRL)")))
                }
                _ if ext.critical && ext.oid != oids::OID_X509_EXT_CRL_NUMBER => {
                    return Err(Error::CrlCriticalExtension(id))
                }
                _ => {}
            }
        }
        let next_update = crl
            .next_update()
            .ok_or_else(|| Error::CrlSyntax("no nextUpdate (freshness cannot be judged)".into()))?
            .to_datetime();
        let mut entries = HashMap::new();
        for r in crl.iter_revoked_certificates() {
            for ext in r.extensions() {
                let understood = ext.oid == oids::OID_X509_EXT_REASON_CODE
                    || ext.oid == oids::OID_X509_EXT_INVALIDITY_DATE;
                if ext.critical && !understood {
                    return Err(Error::CrlCriticalExtension(format!(
                        "{} in an entry",
                        ext.oid.to_id_string()
                    )));
                }
            }
            let reason = r.reason_code().map(|(_, c)| c.0);
            entries.insert(
                r.raw_serial().to_vec(),
                Entry {
                    date: r.revocation_date.to_datetime(),
                    reason,
                },
            );
        }
        Ok(RevocationList {
            this_update: crl.last_update().to_datetime(),
            next_update,
            scope,
            entries,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// thisUpdate: when the information was issued (judging as of a time needs it later).
    pub fn this_update(&self) -> OffsetDateTime {
        self.this_update
    }

    /// The status of `leaf` at `now` (wall clock: freshness is about the CRL, not the signature).
    pub fn status(&self, leaf: &X509Certificate<'_>, now: OffsetDateTime) -> Result<Status, Error> {
        if self.this_update > now + SKEW {
            return Err(Error::FutureCrl {
                this_update: fmt_time(self.this_update),
                now: fmt_time(now),
            });
        }
        if now > self.next_update {
            return Err(Error::StaleCrl {
                next_update: fmt_time(self.next_update),
                now: fmt_time(now),
            });
        }
        if !self.scope.is_empty() {
            let dps = crl_dp_names(leaf)?;
            if !dps.iter().any(|n| self.scope.contains(n)) {
                return Err(Error::CrlScope(
                    "its issuingDistributionPoint names none of the certificate's CRL distribution points (another partition)"
                        .into(),
                ));
            }
        }
        Ok(match self.entries.get(leaf.raw_serial()) {
            // removeFromCRL (8) only belongs in delta CRLs, which are refused at load.
            None => Status::Good,
            Some(e) => Status::Revoked {
                date: e.date,
                reason: e.reason,
            },
        })
    }
}

fn dp_name(gn: &GeneralName<'_>) -> Option<DpName> {
    match gn {
        GeneralName::URI(u) => Some(DpName::Uri(u.to_string())),
        GeneralName::DirectoryName(n) => Some(DpName::Directory(n.as_raw().to_vec())),
        _ => None,
    }
}

/// Every fullName of the certificate's cRLDistributionPoints.
pub fn crl_dp_names(leaf: &X509Certificate<'_>) -> Result<Vec<DpName>, Error> {
    let mut out = Vec::new();
    for ext in leaf.extensions() {
        if let ParsedExtension::CRLDistributionPoints(dps) = ext.parsed_extension() {
            for dp in dps.iter() {
                if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                    out.extend(names.iter().filter_map(dp_name));
                }
            }
        }
    }
    Ok(out)
}

/// The first http:// CRL distribution point of the certificate.
pub fn crl_url(leaf: &X509Certificate<'_>) -> Result<String, Error> {
    crl_dp_names(leaf)?
        .into_iter()
        .find_map(|n| match n {
            DpName::Uri(u) if u.starts_with("http://") => Some(u),
            _ => None,
        })
        .ok_or(Error::NoCrlUrl)
}

/// One line of a CRL publisher's `index.json` (crl-publisher's `IndexEntry`), what a
/// relying party needs of it.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexLine {
    file: String,
    #[serde(default)]
    directory_name_der: Option<String>,
    #[serde(default)]
    url: Option<String>,
    /// The signing root's key identifier (hex): every root generation has the same name and
    /// its own CRLs, so the CRL is picked by the key the certificate's AKI names. Absent in
    /// indexes written before root generations (one generation: any line matches).
    #[serde(default)]
    issuer_key_id: Option<String>,
}

/// The keyIdentifier of a certificate's authorityKeyIdentifier.
fn aki_key_id(leaf: &X509Certificate<'_>) -> Option<Vec<u8>> {
    use x509_parser::extensions::ParsedExtension;
    leaf.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// The file, relative to the index, of the CRL that covers `leaf`: the entry whose
/// directoryName (compared as DER) or URL is one of the certificate's distribution point
/// names, signed by the root generation whose key the certificate's AKI names (root
/// generations share their name and the distribution point's directoryName, never the key).
/// This is how a certificate with a directoryName-only distribution point (the real
/// profile: `…, OU=CRL Distribution Points, OU=<prefecture>, CN=<municipality> CRLDP`) finds
/// its CRL. The CRL itself is still checked against the certificate (its IDP) when loaded.
pub fn file_in_index(leaf: &X509Certificate<'_>, index: &[u8], at: &str) -> Result<String, Error> {
    let bad = |problem: String| Error::CrlIndex {
        at: at.to_owned(),
        problem,
    };
    let lines: Vec<IndexLine> =
        serde_json::from_slice(index).map_err(|e| bad(format!("not a CRL index: {e}")))?;
    let names = crl_dp_names(leaf)?;
    if names.is_empty() {
        return Err(bad("the certificate has no CRL distribution point".into()));
    }
    let key_id = aki_key_id(leaf).map(hex::encode);
    for line in &lines {
        let same_key = match (&line.issuer_key_id, &key_id) {
            (Some(line_key), Some(leaf_key)) => line_key.eq_ignore_ascii_case(leaf_key),
            _ => true,
        };
        if !same_key {
            continue;
        }
        let hit = names.iter().any(|n| match n {
            DpName::Directory(der) => line
                .directory_name_der
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&hex::encode(der))),
            DpName::Uri(u) => line.url.as_deref() == Some(u.as_str()),
        });
        if hit {
            // The file name comes from the index: it must stay below it.
            let safe = !line.file.is_empty()
                && !line.file.starts_with('/')
                && line
                    .file
                    .split('/')
                    .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
            if !safe {
                return Err(bad(format!("unsafe file name {:?}", line.file)));
            }
            return Ok(line.file.clone());
        }
    }
    Err(bad(
        "no CRL in the index for the certificate's distribution point".into(),
    ))
}

/// The CRL of `leaf` found through a publisher's `index.json` at `at` (an http(s) URL or a
/// local path; the CRL files lie beside it, as `publish_all` and `jpki serve` lay them out):
/// its bytes and where they came from.
pub fn from_index(
    at: &str,
    leaf: &X509Certificate<'_>,
    fetch: &crate::Fetch,
) -> Result<(Vec<u8>, String), Error> {
    let remote = at.starts_with("http://") || at.starts_with("https://");
    let index = if remote {
        fetch(at, None)?
    } else {
        std::fs::read(at).map_err(|e| Error::read(std::path::Path::new(at), e))?
    };
    let file = file_in_index(leaf, &index, at)?;
    let base = at.rsplit_once('/').map_or("", |(dir, _)| dir);
    if remote {
        let url = format!("{base}/{file}");
        Ok((fetch(&url, None)?, format!("CRL {url} (via {at})")))
    } else {
        let path = std::path::Path::new(if base.is_empty() { "." } else { base }).join(&file);
        let der = std::fs::read(&path).map_err(|e| Error::read(&path, e))?;
        Ok((der, format!("CRL {} (via {at})", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{openssl, Pki};

    fn p(der: &[u8]) -> X509Certificate<'_> {
        crate::cert::parse(der, "test").unwrap()
    }

    #[test]
    fn the_partition_crl_loads_and_answers() {
        let pki = Pki::get();
        let root = pki.der("sign/root.pem");
        let list = RevocationList::load(&pki.read("sign/crl.pem"), &p(&root)).unwrap();
        assert_eq!(list.len(), 2);
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            list.status(&p(&pki.der("sign/good.pem")), now).unwrap(),
            Status::Good
        );
        let revoked = list.status(&p(&pki.der("sign/revoked.pem")), now).unwrap();
        assert!(
            matches!(
                revoked,
                Status::Revoked {
                    reason: Some(1),
                    ..
                }
            ),
            "{revoked:?}"
        );
        assert!(matches!(revoked.into_result(), Err(Error::Revoked { .. })));
        let held = list.status(&p(&pki.der("sign/held.pem")), now).unwrap();
        assert!(matches!(held.into_result(), Err(Error::Held { .. })));
    }

    #[test]
    fn a_crl_from_another_issuer_or_key_is_refused() {
        let pki = Pki::get();
        let crl = pki.read("sign/crl.pem");
        let auth_root = pki.der("auth/root.pem");
        assert!(matches!(
            RevocationList::load(&crl, &p(&auth_root)),
            Err(Error::CrlIssuer(_))
        ));
        // Same name, other key, no SKI: only the signature tells them apart.
        let impostor = pki.fake_root(
            "basicConstraints = critical, CA:true\nkeyUsage = critical, keyCertSign, cRLSign",
            true,
        );
        assert!(matches!(
            RevocationList::load(&crl, &p(&impostor)),
            Err(Error::CrlSignature)
        ));
        // Garbage.
        assert!(matches!(
            RevocationList::load(b"garbage", &p(&auth_root)),
            Err(Error::CrlSyntax(_))
        ));
    }

    #[test]
    fn a_tampered_crl_fails_its_signature() {
        let pki = Pki::get();
        let root = pki.der("sign/root.pem");
        let mut der = crate::cert::der_from_pem_or_der(&pki.read("sign/crl.pem"));
        let n = der.len();
        der[n - 10] ^= 1;
        assert!(matches!(
            RevocationList::load(&der, &p(&root)),
            Err(Error::CrlSignature)
        ));
    }

    #[test]
    fn freshness_is_judged_at_now() {
        let pki = Pki::get();
        let root = pki.der("sign/root.pem");
        let list = RevocationList::load(&pki.read("sign/crl.pem"), &p(&root)).unwrap();
        let leaf = pki.der("sign/good.pem");
        let late = OffsetDateTime::now_utc() + ::time::Duration::hours(25);
        assert!(matches!(
            list.status(&p(&leaf), late),
            Err(Error::StaleCrl { .. })
        ));
        let early = OffsetDateTime::now_utc() - ::time::Duration::hours(1);
        assert!(matches!(
            list.status(&p(&leaf), early),
            Err(Error::FutureCrl { .. })
        ));
    }

    #[test]
    fn a_crl_for_ca_certificates_or_with_reasons_is_refused() {
        let pki = Pki::get();
        let root = pki.der("sign/root.pem");
        let t = tempfile::tempdir().unwrap();
        for (idp, needle) in [
            ("onlyCA = TRUE", "CA certificates only"),
            ("onlysomereasons = keyCompromise", "onlySomeReasons"),
        ] {
            let cnf = t.path().join("crl.cnf");
            let base = std::fs::read_to_string(pki.path("openssl.cnf")).unwrap();
            std::fs::write(&cnf, format!("{base}\n[x_ext]\nissuingDistributionPoint = critical, @x_idp\n[x_idp]\nfullname = URI:{}\n{idp}\n", crate::testutil::CRL_URL)).unwrap();
            let out = t.path().join("x.crl");
            openssl(
                &pki.dir,
                &[
                    "ca",
                    "-batch",
                    "-config",
                    &cnf.display().to_string(),
                    "-name",
                    "ca_sign",
                    "-gencrl",
                    "-crlexts",
                    "x_ext",
                    "-out",
                    &out.display().to_string(),
                ],
            );
            let e = RevocationList::load(&std::fs::read(&out).unwrap(), &p(&root)).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn distribution_points_are_read_from_the_certificate() {
        let pki = Pki::get();
        let leaf = pki.der("sign/good.pem");
        let names = crl_dp_names(&p(&leaf)).unwrap();
        assert_eq!(names.len(), 2);
        assert_eq!(names[0], DpName::Uri(crate::testutil::CRL_URL.into()));
        assert!(matches!(names[1], DpName::Directory(_)));
        assert_eq!(crl_url(&p(&leaf)).unwrap(), crate::testutil::CRL_URL);
        let root = pki.der("sign/root.pem");
        assert!(matches!(crl_url(&p(&root)), Err(Error::NoCrlUrl)));
    }
}
