//! Test fixtures: two JPKI-shaped hierarchies made with the OpenSSL CLI (an outside oracle,
//! nothing rcgen-shaped), built once per test process.
//!
//! signing root + leaves `good`, `revoked` (keyCompromise), `held` (certificateHold),
//! `expired` (2020), `other` (another partition's CRL DP), an OCSP responder `ocsp`
//! (id-kp-OCSPSigning), and the CRLs `crl.pem` (partition 1, fresh) and `crl-other.pem`
//! (partition 2); auth root + leaf `auth`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Pki {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

pub const CRL_URL: &str = "http://127.0.0.1:9/crl/signing/1.crl";
pub const CRL_URL_OTHER: &str = "http://127.0.0.1:9/crl/signing/2.crl";
pub const NAME: &str = "山田\u{3000}太郎";
pub const ADDRESS: &str = "東京都清瀬市中里一丁目１番地";

pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn config(dir: &Path) -> String {
    let ca = |name: &str, sub: &str| {
        format!(
            "[{name}]\ndir = {d}/{sub}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir\ncertificate = $dir/root.pem\n\
             private_key = $dir/root.key\nserial = $dir/serial\ncrlnumber = $dir/crlnumber\ndefault_md = sha256\n\
             default_days = 365\ndefault_crl_hours = 24\npolicy = policy_any\nunique_subject = no\n\
             copy_extensions = none\nemail_in_dn = no\n\n",
            d = dir.display()
        )
    };
    let dp_dn = |cn: &str| {
        format!("C=JP\nO=JPKI-TEST\n1.OU=JPKI for digital signature\n2.OU=CRL Distribution Points\nCN={cn}\n\n")
    };
    format!(
        "{}{}\
[policy_any]\ncountryName = optional\nlocalityName = optional\norganizationName = optional\n\
organizationalUnitName = optional\ncommonName = supplied\n\n\
[req]\ndistinguished_name = req_dn\nstring_mask = utf8only\nutf8 = yes\n[req_dn]\n\n\
[root_ext]\nbasicConstraints = critical, CA:true\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n\n\
[sign_ext]\nkeyUsage = critical, digitalSignature, nonRepudiation\ncertificatePolicies = critical, 1.2.392.200149.8.5.1.1.20\n\
subjectAltName = @sign_san\ncrlDistributionPoints = crldp1\nauthorityKeyIdentifier = keyid\nsubjectKeyIdentifier = hash\n\n\
[other_ext]\nkeyUsage = critical, digitalSignature, nonRepudiation\ncertificatePolicies = critical, 1.2.392.200149.8.5.1.1.20\n\
subjectAltName = @sign_san\ncrlDistributionPoints = crldp2\nauthorityKeyIdentifier = keyid\n\n\
[sign_san]\notherName.1 = 1.2.392.200149.8.5.5.1;FORMAT:UTF8,UTF8:{NAME}\notherName.2 = 1.2.392.200149.8.5.5.4;UTF8:319800217\n\
otherName.3 = 1.2.392.200149.8.5.5.3;UTF8:1\notherName.4 = 1.2.392.200149.8.5.5.5;FORMAT:UTF8,UTF8:{ADDRESS}\n\
otherName.5 = 1.2.392.200149.8.5.5.2;UTF8:00000\notherName.6 = 1.2.392.200149.8.5.5.6;UTF8:00000000000000\n\n\
[crldp1]\nfullname = URI:{CRL_URL}, dirName:dp1_dn\n[dp1_dn]\n{}\
[crldp2]\nfullname = URI:{CRL_URL_OTHER}, dirName:dp2_dn\n[dp2_dn]\n{}\
[crl_ext]\nauthorityKeyIdentifier = keyid\nissuingDistributionPoint = critical, @idp1\n[idp1]\nfullname = URI:{CRL_URL}, dirName:dp1_dn\n\n\
[crl_ext_other]\nauthorityKeyIdentifier = keyid\nissuingDistributionPoint = critical, @idp2\n[idp2]\nfullname = URI:{CRL_URL_OTHER}, dirName:dp2_dn\n\n\
[ocsp_ext]\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = OCSPSigning\nauthorityKeyIdentifier = keyid\n\n\
[auth_ext]\nkeyUsage = critical, digitalSignature\ncertificatePolicies = 1.2.392.200149.8.5.1.3.30\nauthorityKeyIdentifier = keyid\n\
crlDistributionPoints = URI:http://127.0.0.1:9/crl/auth/1.crl\n\n",
        ca("ca_sign", "sign"),
        ca("ca_auth", "auth"),
        dp_dn("P0001 CRLDP"),
        dp_dn("P0002 CRLDP"),
    )
}

impl Pki {
    /// The fixtures; with `RP_KEEP_FIXTURES=DIR` set they are also copied to DIR (to run the
    /// external judges on the very same files).
    pub fn get() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(|| {
            let pki = Pki::build();
            if let Some(out) = std::env::var_os("RP_KEEP_FIXTURES") {
                let out = PathBuf::from(out);
                for sub in ["sign", "auth"] {
                    std::fs::create_dir_all(out.join(sub)).expect("mkdir");
                    for e in std::fs::read_dir(pki.dir.join(sub))
                        .expect("read_dir")
                        .flatten()
                    {
                        std::fs::copy(e.path(), out.join(sub).join(e.file_name())).expect("copy");
                    }
                }
                std::fs::copy(pki.path("doc.txt"), out.join("doc.txt")).expect("copy");
            }
            pki
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).expect("fixture file")
    }

    fn build() -> Pki {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("openssl.cnf"), config(&dir)).expect("write config");
        for (sub, ou) in [
            ("sign", "JPKI for digital signature"),
            ("auth", "JPKI for user authentication"),
        ] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("index.txt"), "").expect("index");
            std::fs::write(d.join("serial"), "1000\n").expect("serial");
            std::fs::write(d.join("crlnumber"), "01\n").expect("crlnumber");
            let subj = format!(
                "/C=JP/O=JPKI-TEST/OU={ou}/OU=Japan Agency for Local Authority Information Systems"
            );
            openssl(
                &dir,
                &["genrsa", "-out", &format!("{sub}/root.key"), "2048"],
            );
            openssl(
                &dir,
                &[
                    "req",
                    "-config",
                    "openssl.cnf",
                    "-new",
                    "-x509",
                    "-key",
                    &format!("{sub}/root.key"),
                    "-subj",
                    &subj,
                    "-days",
                    "3650",
                    "-sha256",
                    "-extensions",
                    "root_ext",
                    "-out",
                    &format!("{sub}/root.pem"),
                ],
            );
        }
        let pki = Pki { dir, _tmp: tmp };
        pki.leaf("sign", "ca_sign", "good", "sign_ext", None);
        pki.leaf("sign", "ca_sign", "revoked", "sign_ext", None);
        pki.leaf("sign", "ca_sign", "held", "sign_ext", None);
        pki.leaf(
            "sign",
            "ca_sign",
            "expired",
            "sign_ext",
            Some(("20200101000000Z", "20210101000000Z")),
        );
        pki.leaf("sign", "ca_sign", "other", "other_ext", None);
        pki.leaf("sign", "ca_sign", "ocsp", "ocsp_ext", None);
        pki.leaf("auth", "ca_auth", "auth", "auth_ext", None);
        let ca = |args: &[&str]| {
            let mut all = vec!["ca", "-batch", "-config", "openssl.cnf", "-name", "ca_sign"];
            all.extend_from_slice(args);
            openssl(&pki.dir, &all);
        };
        ca(&[
            "-revoke",
            "sign/revoked.pem",
            "-crl_reason",
            "keyCompromise",
        ]);
        ca(&[
            "-revoke",
            "sign/held.pem",
            "-crl_hold",
            "holdInstructionReject",
        ]);
        ca(&["-gencrl", "-crlexts", "crl_ext", "-out", "sign/crl.pem"]);
        ca(&[
            "-gencrl",
            "-crlexts",
            "crl_ext_other",
            "-out",
            "sign/crl-other.pem",
        ]);
        std::fs::write(pki.path("doc.txt"), "確定申告書 2026\n").expect("doc");
        pki
    }

    fn leaf(&self, sub: &str, ca: &str, name: &str, ext: &str, dates: Option<(&str, &str)>) {
        let key = format!("{sub}/{name}.key");
        let csr = format!("{sub}/{name}.csr");
        let subj = if sub == "sign" {
            format!("/C=JP/L=Tokyo-to/L=Kiyose-shi/CN={name}0001")
        } else {
            format!("/C=JP/CN={name}0001")
        };
        openssl(&self.dir, &["genrsa", "-out", &key, "2048"]);
        openssl(
            &self.dir,
            &[
                "req",
                "-config",
                "openssl.cnf",
                "-new",
                "-key",
                &key,
                "-subj",
                &subj,
                "-out",
                &csr,
            ],
        );
        let out = format!("{sub}/{name}.pem");
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-name",
            ca,
            "-preserveDN",
            "-notext",
            "-extensions",
            ext,
            "-in",
            &csr,
            "-out",
            &out,
        ];
        if let Some((from, to)) = dates {
            args.extend_from_slice(&["-startdate", from, "-enddate", to]);
        }
        openssl(&self.dir, &args);
    }

    /// `openssl cms -sign` with the leaf `sub/name`; `extra` e.g. `["-nodetach"]`, `["-outform", "PEM"]`.
    pub fn sign(&self, sub: &str, name: &str, extra: &[&str]) -> Vec<u8> {
        let signer = format!("{sub}/{name}.pem");
        let key = format!("{sub}/{name}.key");
        let mut args = vec![
            "cms", "-sign", "-binary", "-md", "sha256", "-in", "doc.txt", "-signer", &signer,
            "-inkey", &key,
        ];
        if !extra.contains(&"-outform") {
            args.extend_from_slice(&["-outform", "DER"]);
        }
        args.extend_from_slice(extra);
        openssl(&self.dir, &args)
    }

    /// An OCSP answer from `openssl ocsp -index` for the DER request, signed by the root
    /// (`signer` = None) or by `sub/<signer>`.
    pub fn ocsp_answer(&self, request: &[u8], signer: Option<&str>, extra: &[&str]) -> Vec<u8> {
        let t = tempfile::tempdir().expect("tempdir");
        let req = t.path().join("req.der");
        let resp = t.path().join("resp.der");
        std::fs::write(&req, request).expect("write request");
        let (rsigner, rkey) = match signer {
            None => ("sign/root.pem".to_string(), "sign/root.key".to_string()),
            Some(s) => (format!("{s}.pem"), format!("{s}.key")),
        };
        let (req_s, resp_s) = (req.display().to_string(), resp.display().to_string());
        let mut args = vec![
            "ocsp",
            "-index",
            "sign/index.txt",
            "-CA",
            "sign/root.pem",
            "-rsigner",
            &rsigner,
            "-rkey",
            &rkey,
            "-reqin",
            &req_s,
            "-respout",
            &resp_s,
        ];
        args.extend_from_slice(extra);
        openssl(&self.dir, &args);
        std::fs::read(&resp).expect("response")
    }

    /// An ad-hoc certificate for the good leaf's key, issued by `ca` (e.g. `sign/root`) with
    /// `openssl x509 -req`; `ext` is the body of an `[e]` extension section (empty = v1).
    pub fn issue(&self, ca: &str, ext: &str, extra: &[&str]) -> Vec<u8> {
        let t = tempfile::tempdir().expect("tempdir");
        let extfile = t.path().join("ext.cnf");
        std::fs::write(&extfile, format!("[e]\n{ext}\n")).expect("ext");
        let out = t.path().join("out.der");
        let (cacert, cakey) = (format!("{ca}.pem"), format!("{ca}.key"));
        let (extfile, out_s) = (extfile.display().to_string(), out.display().to_string());
        let serial = format!(
            "0x{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos())
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "sign/good.csr",
            "-CA",
            &cacert,
            "-CAkey",
            &cakey,
            "-set_serial",
            &serial,
            "-days",
            "30",
            "-outform",
            "DER",
            "-out",
            &out_s,
        ];
        if !ext.is_empty() {
            args.extend_from_slice(&["-extfile", &extfile, "-extensions", "e"]);
        }
        args.extend_from_slice(extra);
        openssl(&self.dir, &args);
        std::fs::read(&out).expect("issued")
    }

    /// A self-signed "root" with the given extensions and the signing root's subject name
    /// (`same_name`) or another; key of the `other` leaf.
    pub fn fake_root(&self, ext: &str, same_name: bool) -> Vec<u8> {
        let t = tempfile::tempdir().expect("tempdir");
        let cnf = t.path().join("r.cnf");
        std::fs::write(
            &cnf,
            format!("[req]\ndistinguished_name = dn\nstring_mask = utf8only\n[dn]\n[e]\n{ext}\n"),
        )
        .expect("cnf");
        let out = t.path().join("root.der");
        let subj = if same_name {
            "/C=JP/O=JPKI-TEST/OU=JPKI for digital signature/OU=Japan Agency for Local Authority Information Systems"
        } else {
            "/C=JP/O=Elsewhere"
        };
        let (cnf_s, out_s) = (cnf.display().to_string(), out.display().to_string());
        openssl(
            &self.dir,
            &[
                "req",
                "-config",
                &cnf_s,
                "-new",
                "-x509",
                "-key",
                "sign/other.key",
                "-subj",
                subj,
                "-days",
                "30",
                "-sha256",
                "-extensions",
                "e",
                "-outform",
                "DER",
                "-out",
                &out_s,
            ],
        );
        std::fs::read(&out).expect("root")
    }

    /// The DER of a PEM fixture.
    pub fn der(&self, rel: &str) -> Vec<u8> {
        crate::cert::certificate_der(&self.read(rel), "fixture").expect("fixture certificate")
    }
}
