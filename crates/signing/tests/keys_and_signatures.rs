//! Keys made by the tools users have (`ssh-keygen`, `openssl`) sign components; the
//! signatures verify with the public halves, fail on changed bytes and other keys, and
//! are readable by those same tools (fingerprints by ssh-keygen, P-256 signatures by
//! OpenSSL).

use std::path::{Path, PathBuf};
use std::process::Command;
use tessera_signing::{PublicKey, SecretKey, Signed, Untrusted, component};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install openssh-client and openssl)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A private key file of each kind and form, with its public key file.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn ssh(&self, name: &str, kind: &[&str]) -> (PathBuf, PathBuf) {
        let key = self.dir.path().join(name);
        run(Command::new("ssh-keygen").args(kind).args(["-q", "-N", "", "-C", name, "-f"]).arg(&key));
        (key.clone(), key.with_extension("pub"))
    }

    fn openssl(&self, name: &str, generate: &[&str]) -> (PathBuf, PathBuf) {
        let key = self.dir.path().join(format!("{name}.pem"));
        let public = self.dir.path().join(format!("{name}.pub.pem"));
        run(Command::new("openssl").args(generate).arg("-out").arg(&key));
        run(Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public));
        (key, public)
    }

    fn all(&self) -> Vec<(&'static str, PathBuf, PathBuf)> {
        vec![
            ("openssh ed25519", self.ssh("ed", &["-t", "ed25519"]).0, self.dir.path().join("ed.pub")),
            ("openssh p-256", self.ssh("ec", &["-t", "ecdsa", "-b", "256"]).0, self.dir.path().join("ec.pub")),
            {
                let (k, p) = self.openssl("ed-pkcs8", &["genpkey", "-algorithm", "ed25519"]);
                ("pkcs8 ed25519", k, p)
            },
            {
                let (k, p) = self.openssl("ec-pkcs8", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
                ("pkcs8 p-256", k, p)
            },
            {
                let (k, p) = self.openssl("ec-sec1", &["ecparam", "-name", "prime256v1", "-genkey", "-noout"]);
                ("sec1 p-256", k, p)
            },
        ]
    }
}

fn component_bytes() -> Vec<u8> {
    wat::parse_str("(component (core module (func (export \"f\"))))").unwrap()
}

fn detached(signed: &Signed) -> Option<&str> {
    match signed {
        Signed::Detached(sig) => Some(sig),
        Signed::Embedded(_) => None,
    }
}

fn signed_bytes(original: &[u8], signed: &Signed) -> Vec<u8> {
    match signed {
        Signed::Embedded(bytes) => bytes.clone(),
        Signed::Detached(_) => original.to_vec(),
    }
}

#[test]
fn every_key_form_signs_and_verifies_and_catches_changes_and_strangers() {
    let keys = Keys::new();
    let stranger = PublicKey::from_file(&keys.ssh("stranger", &["-t", "ed25519"]).1).unwrap();
    let original = component_bytes();
    for (form, private, public) in keys.all() {
        let secret = SecretKey::from_file(&private).unwrap_or_else(|e| panic!("{form}: {e:#}"));
        let public = PublicKey::from_file(&public).unwrap_or_else(|e| panic!("{form}: {e:#}"));
        assert_eq!(secret.public(), public, "{form}");

        let signed = component::sign(&original, &secret).unwrap();
        let bytes = signed_bytes(&original, &signed);
        let trusted = component::check(&bytes, detached(&signed), std::slice::from_ref(&public)).unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(trusted.key, public.fingerprint());
        assert_eq!(trusted.how, if form.contains("ed25519") { "embedded" } else { "detached" }, "{form}");
        // The signed component still parses as a component.
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all()).validate_all(&bytes).unwrap();

        // A changed byte: refused. For an embedded signature the trusted key is named.
        let mut changed = bytes.clone();
        *changed.last_mut().unwrap() ^= 1;
        let refused = component::check(&changed, detached(&signed), std::slice::from_ref(&public)).unwrap_err();
        match form.contains("ed25519") {
            true => assert_eq!(refused, Untrusted::Tampered { key: public.fingerprint() }, "{form}"),
            false => assert!(matches!(refused, Untrusted::UnknownKey { .. }), "{form}: {refused}"),
        }
        // Another key on the list only: refused as an unknown signer.
        let refused = component::check(&bytes, detached(&signed), std::slice::from_ref(&stranger)).unwrap_err();
        assert!(matches!(refused, Untrusted::UnknownKey { .. }), "{form}: {refused}");
    }
    assert_eq!(component::check(&original, None, &[stranger]), Err(Untrusted::Unsigned));
}

#[test]
fn fingerprints_match_ssh_keygen() {
    let keys = Keys::new();
    for kind in [&["-t", "ed25519"][..], &["-t", "ecdsa", "-b", "256"]] {
        let (_, public) = keys.ssh(kind[1], kind);
        let listed = run(Command::new("ssh-keygen").arg("-lf").arg(&public));
        let key = PublicKey::from_file(&public).unwrap();
        assert!(listed.contains(&key.fingerprint()), "{listed} vs {}", key.fingerprint());
        // The same key as PEM has the same fingerprint.
        assert_eq!(PublicKey::parse(&key.to_pem()).unwrap(), key);
    }
}

#[test]
fn a_p256_detached_signature_verifies_with_openssl() {
    let keys = Keys::new();
    let (private, public) = keys.openssl("ec", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let bytes = component_bytes();
    let Signed::Detached(sig) = component::sign(&bytes, &SecretKey::from_file(&private).unwrap()).unwrap() else { panic!("P-256 signs detached") };
    let dir = keys.dir.path();
    std::fs::write(dir.join("c.wasm"), &bytes).unwrap();
    use base64::Engine as _;
    std::fs::write(dir.join("c.sig.der"), base64::engine::general_purpose::STANDARD.decode(sig).unwrap()).unwrap();
    let verified = run(Command::new("openssl").args(["dgst", "-sha256", "-verify"]).arg(&public).arg("-signature").arg(dir.join("c.sig.der")).arg(dir.join("c.wasm")));
    assert!(verified.contains("Verified OK"), "{verified}");
}

#[test]
fn bad_keys_get_clear_errors() {
    let keys = Keys::new();
    let (rsa, _) = keys.ssh("rsa", &["-t", "rsa", "-b", "2048"]);
    let err = format!("{:#}", SecretKey::from_file(&rsa).unwrap_err());
    assert!(err.contains("not supported") && err.contains("Ed25519 or ECDSA P-256"), "{err}");
    let (locked, _) = {
        let key = keys.dir.path().join("locked");
        run(Command::new("ssh-keygen").args(["-t", "ed25519", "-q", "-N", "secret", "-f"]).arg(&key));
        (key, ())
    };
    let err = format!("{:#}", SecretKey::from_file(&locked).unwrap_err());
    assert!(err.contains("passphrase"), "{err}");
    let err = format!("{:#}", PublicKey::parse("hello").unwrap_err());
    assert!(err.contains("not a public key"), "{err}");
    assert!(Path::new(&keys.dir.path().join("rsa.pub")).exists());
}
