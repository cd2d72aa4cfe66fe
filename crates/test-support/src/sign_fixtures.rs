//! Test fixtures for the signing tests: a throwaway PKI made with the openssl CLI (code-signing
//! CA + leaf certificates, a TSA, PFX files), PE inputs (mingw exe, makensis Setup.exe) and a
//! wrapper around the real `osslsigncode verify`.

pub use crate::gate::require_tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Signing-service HTTP rules with short waits, so retry tests run fast.
pub fn fast_http_policy(
    request_timeout: std::time::Duration,
) -> perry_ship_windows::sign::HttpPolicy {
    use std::time::Duration;
    perry_ship_windows::sign::HttpPolicy {
        request_timeout,
        attempts: 3,
        timestamp_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_millis(200),
        operation_deadline: Duration::from_secs(10),
        poll_interval: Duration::from_millis(20),
    }
}

/// Real signing endpoints but no public timestamp fallbacks: tests only talk to their own
/// stand-in servers.
pub fn local_endpoints() -> perry_ship_windows::config::SigningEndpoints {
    perry_ship_windows::config::SigningEndpoints {
        timestamp_fallbacks: vec![],
        ..Default::default()
    }
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

const LEAF_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
const CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n";
const TSA_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

/// All files of the test PKI, in one directory.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// Creates the code-signing CA (`ca.crt`), an RSA leaf (`rsa.key`/`rsa.crt`, 1 year), a
    /// P-256 leaf (`ec.key`/`ec.crt`), an unrelated key (`other.key`), certificates for
    /// `rsa.key` that must be refused or warned about (`expired.crt`, `notyet.crt`,
    /// `noeku.crt` (server auth only), `nodigsig.crt` (keyEncipherment only), `soon.crt`
    /// (10 days left)) and the TSA (`tsa-ca.crt`, `tsa.crt`, `tsa.key`).
    pub fn create(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("leaf.ext"), LEAF_EXT).unwrap();
        std::fs::write(dir.join("ca.ext"), CA_EXT).unwrap();
        std::fs::write(dir.join("tsa.ext"), TSA_EXT).unwrap();
        for (key, subject) in [
            ("ca", "/CN=Perry Test Code Signing CA"),
            ("tsa-ca", "/CN=Perry Test TSA Root"),
        ] {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{key}.key"),
                    "-out",
                    &format!("{key}.crt"),
                    "-subj",
                    subject,
                    "-days",
                    "3650",
                    "-extensions",
                    "v3_ca",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        let leaf = |name: &str, newkey: &[&str], subject: &str, ca: &str, ext: &str| {
            let days = if name == "tsa" { "30" } else { "365" };
            let mut args = vec!["req", "-new", "-nodes"];
            args.extend_from_slice(newkey);
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            args.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", subject]);
            openssl(dir, &args);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &format!("{ca}.crt"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.crt"),
                    "-days",
                    days,
                    "-sha256",
                    "-extfile",
                    ext,
                ],
            );
        };
        leaf(
            "rsa",
            &["-newkey", "rsa:2048"],
            "/C=US/O=Perry Test/CN=Perry Test Signer",
            "ca",
            "leaf.ext",
        );
        leaf(
            "ec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "/C=US/O=Perry Test/CN=Perry EC Signer",
            "ca",
            "leaf.ext",
        );
        leaf(
            "tsa",
            &["-newkey", "rsa:2048"],
            "/CN=Perry Test TSA",
            "tsa-ca",
            "tsa.ext",
        );
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "other.key",
            ],
        );
        // more certificates for rsa.key, each with one problem
        for (name, ext, days) in [
            ("noeku", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n", "365"),
            ("nodigsig", "basicConstraints=CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=codeSigning\n", "365"),
            ("soon", LEAF_EXT, "10"),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            openssl(
                dir,
                &[
                    "x509", "-req", "-in", "rsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                    "-CAcreateserial", "-out", &format!("{name}.crt"), "-days", days,
                    "-sha256", "-extfile", &format!("{name}.ext"),
                ],
            );
        }
        // an expired certificate for rsa.key, issued with `openssl ca` (x509 -req cannot backdate)
        std::fs::create_dir_all(dir.join("ca-db")).unwrap();
        std::fs::write(dir.join("ca-db/index.txt"), "").unwrap();
        std::fs::write(dir.join("ca-db/serial"), "1000\n").unwrap();
        std::fs::write(dir.join("ca.cnf"), format!(
            "[ca]\ndefault_ca=test\n[test]\ndir={d}/ca-db\ndatabase=$dir/index.txt\nserial=$dir/serial\nnew_certs_dir=$dir\ncertificate={d}/ca.crt\nprivate_key={d}/ca.key\ndefault_md=sha256\npolicy=any\nunique_subject=no\nx509_extensions=leaf\n[any]\ncommonName=supplied\n[leaf]\nbasicConstraints=CA:FALSE\nextendedKeyUsage=codeSigning\n",
            d = dir.display())).unwrap();
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200201000000Z",
                "-in",
                "rsa.csr",
                "-out",
                "expired.crt",
                "-notext",
            ],
        );
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-startdate",
                "20991201000000Z",
                "-enddate",
                "21000101000000Z",
                "-in",
                "rsa.csr",
                "-out",
                "notyet.crt",
                "-notext",
            ],
        );
        std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
        std::fs::write(dir.join("tsa.cnf"), format!(
            "[tsa]\ndefault_tsa=tsa1\n[tsa1]\ndir={d}\nserial=$dir/tsaserial\ncrypto_device=builtin\nsigner_cert=$dir/tsa.crt\ncerts=$dir/tsa-ca.crt\nsigner_key=$dir/tsa.key\nsigner_digest=sha256\ndefault_policy=1.2.3.4.1\ndigests=sha256\naccuracy=secs:1\nordering=no\ntsa_name=no\ness_cert_id_chain=no\ness_cert_id_alg=sha256\n",
            d = dir.display())).unwrap();
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    /// Exports `key` + `cert` (+ the CA) as a PFX; the password goes through the environment,
    /// never the command line. `extra` adds options such as the legacy 3DES algorithms.
    pub fn pfx(
        &self,
        name: &str,
        key: &str,
        cert: &str,
        password: &str,
        extra: &[&str],
    ) -> Vec<u8> {
        let out = format!("{name}.pfx");
        let mut cmd = Command::new("openssl");
        cmd.current_dir(&self.dir).env("PFX_PASS", password).args([
            "pkcs12",
            "-export",
            "-inkey",
            key,
            "-in",
            cert,
            "-certfile",
            "ca.crt",
            "-passout",
            "env:PFX_PASS",
            "-out",
            &out,
        ]);
        cmd.args(extra);
        run(&mut cmd);
        self.read(&out)
    }

    /// A certs-only PKCS#7 (DER) holding `certs`, as Trusted Signing returns.
    pub fn pkcs7_bundle(&self, certs: &[&str]) -> Vec<u8> {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(&self.dir).args([
            "crl2pkcs7",
            "-nocrl",
            "-outform",
            "DER",
            "-out",
            "bundle.p7b",
        ]);
        for c in certs {
            cmd.args(["-certfile", c]);
        }
        run(&mut cmd);
        self.read("bundle.p7b")
    }
}

/// Builds a small Windows console exe with mingw.
pub fn mingw_exe(dir: &Path, name: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void){puts(\"hello from perry\");return 0;}\n",
    )
    .unwrap();
    let exe = dir.join(format!("{name}.exe"));
    run(Command::new("x86_64-w64-mingw32-gcc")
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(&src));
    exe
}

/// Builds a minimal amd64 unicode NSIS installer around `payload`.
pub fn nsis_setup(dir: &Path, payload: &Path) -> PathBuf {
    let nsi = dir.join("setup.nsi");
    let out = dir.join("Setup.exe");
    std::fs::write(&nsi, format!(
        "Unicode true\nTarget amd64-unicode\nName \"Perry Test\"\nOutFile \"{}\"\nInstallDir \"$LOCALAPPDATA\\PerryTest\"\nRequestExecutionLevel user\nSection\nSetOutPath \"$INSTDIR\"\nFile \"{}\"\nSectionEnd\n",
        out.display(), payload.display())).unwrap();
    run(Command::new("makensis").arg("-V2").arg(&nsi));
    out
}

/// `osslsigncode verify` with our test CAs; returns (success, combined output).
pub fn osslsigncode_verify(pki: &Pki, file: &Path) -> (bool, String) {
    let out = Command::new("osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(pki.path("ca.crt"))
        .arg("-TSA-CAfile")
        .arg(pki.path("tsa-ca.crt"))
        .arg("-in")
        .arg(file)
        .output()
        .expect("run osslsigncode");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Asserts a successful, timestamped osslsigncode verification.
pub fn assert_osslsigncode_ok(pki: &Pki, file: &Path) {
    let (ok, text) = osslsigncode_verify(pki, file);
    eprintln!("osslsigncode verify {}:\n{text}", file.display());
    assert!(
        ok,
        "osslsigncode verify failed for {}:\n{text}",
        file.display()
    );
    assert!(text.contains("Signature verification: ok"), "{text}");
    assert!(
        text.contains("Timestamp Server Signature verification: ok"),
        "no verified timestamp:\n{text}"
    );
}

/// Flips one byte in the middle of the signed content (before the certificate table).
pub fn flip_byte(file: &Path) {
    let mut data = std::fs::read(file).unwrap();
    let at = data.len() / 3;
    data[at] ^= 0x5a;
    std::fs::write(file, data).unwrap();
}

/// Every regular file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out
}

/// Fails if any of `secrets` (raw, and base64 of the raw value) occurs in `haystack`.
pub fn assert_no_secret(where_: &str, haystack: &[u8], secrets: &[&str]) {
    use base64::Engine as _;
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        for needle in [s.as_bytes(), b64.as_bytes()] {
            assert!(
                !haystack.windows(needle.len()).any(|w| w == needle),
                "a credential value leaked into {where_}"
            );
        }
    }
}
