//! Keys users already have: Ed25519 and ECDSA P-256, as PEM (PKCS#8, SEC1, SPKI) or
//! OpenSSH files (`ssh-keygen -t ed25519` / `-t ecdsa -b 256`). A key is named by its
//! OpenSSH SHA-256 fingerprint, the one `ssh-keygen -lf KEY` prints.

use anyhow::{Context as _, Result, bail};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData};
use ssh_key::private::{EcdsaKeypair, KeypairData};
use std::path::Path;

/// A public key that can check signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519.
    Ed25519([u8; 32]),
    /// ECDSA on P-256 with SHA-256.
    P256(p256::ecdsa::VerifyingKey),
}

/// A private key that signs.
pub enum SecretKey {
    /// Ed25519.
    Ed25519(ed25519_compact::KeyPair),
    /// ECDSA on P-256 with SHA-256 (signatures in ASN.1 DER, as cosign and OpenSSL write them).
    P256(p256::ecdsa::SigningKey),
}

const KEY_FORMS: &str = "Ed25519 or ECDSA P-256, as PEM (`openssl genpkey`, cosign) or OpenSSH (`ssh-keygen -t ed25519`)";

impl PublicKey {
    /// Parses a public key: PEM `PUBLIC KEY`, an OpenSSH line (`ssh-ed25519 AAAA...`), or
    /// the public half of a private key file.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.starts_with("-----BEGIN PUBLIC KEY-----") {
            if let Ok(pk) = ed25519_compact::PublicKey::from_pem(text) {
                return Ok(Self::Ed25519(*pk));
            }
            return p256::ecdsa::VerifyingKey::from_public_key_pem(text)
                .map(Self::P256)
                .map_err(|_| anyhow::anyhow!("this PEM public key is neither Ed25519 nor P-256 (keys must be {KEY_FORMS})"));
        }
        if text.starts_with("-----BEGIN") {
            return Ok(SecretKey::parse(text)?.public());
        }
        let ssh = ssh_key::PublicKey::from_openssh(text).map_err(|e| anyhow::anyhow!("not a public key ({e}); keys must be {KEY_FORMS}"))?;
        match ssh.key_data() {
            KeyData::Ed25519(pk) => Ok(Self::Ed25519(pk.0)),
            KeyData::Ecdsa(EcdsaPublicKey::NistP256(point)) => p256::ecdsa::VerifyingKey::from_sec1_bytes(point.as_bytes())
                .map(Self::P256)
                .map_err(|e| anyhow::anyhow!("bad P-256 point: {e}")),
            other => bail!("OpenSSH key type `{}` is not supported; keys must be {KEY_FORMS}", other.algorithm()),
        }
    }

    /// Reads and parses a public key file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read key {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("key {}", path.display()))
    }

    /// The OpenSSH SHA-256 fingerprint (`SHA256:...`), as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        let data = match self {
            Self::Ed25519(pk) => KeyData::Ed25519(Ed25519PublicKey(*pk)),
            Self::P256(vk) => KeyData::Ecdsa(
                EcdsaPublicKey::from_sec1_bytes(vk.to_encoded_point(false).as_bytes()).expect("a valid P-256 point"),
            ),
        };
        ssh_key::PublicKey::new(data, "").fingerprint(ssh_key::HashAlg::Sha256).to_string()
    }

    /// `Ed25519` or `P-256`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "Ed25519",
            Self::P256(_) => "P-256",
        }
    }

    /// The key as PEM `PUBLIC KEY` (SPKI), the form `cosign verify --key` and OpenSSL read.
    pub fn to_pem(&self) -> String {
        match self {
            Self::Ed25519(pk) => ed25519_compact::PublicKey::new(*pk).to_pem(),
            Self::P256(vk) => vk.to_public_key_pem(p256::pkcs8::LineEnding::LF).expect("PEM encoding"),
        }
    }

    /// Whether `signature` is this key's signature of `message` (Ed25519: 64 raw bytes;
    /// P-256: ASN.1 DER over SHA-256).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Ed25519(pk) => ed25519_compact::Signature::from_slice(signature)
                .is_ok_and(|sig| ed25519_compact::PublicKey::new(*pk).verify(message, &sig).is_ok()),
            Self::P256(vk) => p256::ecdsa::DerSignature::try_from(signature).is_ok_and(|sig| vk.verify(message, &sig).is_ok()),
        }
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        write!(f, "SecretKey({} {})", self.public().algorithm(), self.public().fingerprint())
    }
}

impl SecretKey {
    /// Parses a private key: PEM `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1) or
    /// `OPENSSH PRIVATE KEY` (not passphrase-protected).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let key = ssh_key::PrivateKey::from_openssh(text).map_err(|e| anyhow::anyhow!("bad OpenSSH private key: {e}"))?;
            if key.is_encrypted() {
                bail!("the OpenSSH key is protected by a passphrase; sign with an unprotected copy (`cp KEY copy && ssh-keygen -p -N '' -f copy`)");
            }
            return match key.key_data() {
                KeypairData::Ed25519(pair) => {
                    let seed = ed25519_compact::Seed::from_slice(&pair.private.to_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
                    Ok(Self::Ed25519(ed25519_compact::KeyPair::from_seed(seed)))
                }
                KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => p256::ecdsa::SigningKey::from_slice(private.as_slice())
                    .map(Self::P256)
                    .map_err(|e| anyhow::anyhow!("bad P-256 key: {e}")),
                other => bail!("OpenSSH key type `{}` is not supported; keys must be {KEY_FORMS}", other.algorithm().map(|a| a.to_string()).unwrap_or_default()),
            };
        }
        if text.starts_with("-----BEGIN EC PRIVATE KEY-----") {
            let key = p256::SecretKey::from_sec1_pem(text).map_err(|_| anyhow::anyhow!("this EC private key is not on P-256 (keys must be {KEY_FORMS})"))?;
            return Ok(Self::P256(key.into()));
        }
        if text.starts_with("-----BEGIN ENCRYPTED") {
            bail!("the key is encrypted; sign with an unencrypted PEM or OpenSSH key (`openssl pkey -in KEY -out plain.pem`)");
        }
        if text.starts_with("-----BEGIN PRIVATE KEY-----") {
            if let Ok(pair) = ed25519_compact::KeyPair::from_pem(text) {
                return Ok(Self::Ed25519(pair));
            }
            if let Ok(key) = ed25519_compact::SecretKey::from_pem(text) {
                return Ok(Self::Ed25519(ed25519_compact::KeyPair::from_seed(key.seed())));
            }
            return p256::ecdsa::SigningKey::from_pkcs8_pem(text)
                .map(Self::P256)
                .map_err(|_| anyhow::anyhow!("this PKCS#8 key is neither Ed25519 nor P-256 (keys must be {KEY_FORMS})"));
        }
        bail!("not a private key; keys must be {KEY_FORMS}")
    }

    /// Reads and parses a private key file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read key {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("key {}", path.display()))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        match self {
            Self::Ed25519(pair) => PublicKey::Ed25519(*pair.pk),
            Self::P256(sk) => PublicKey::P256(*sk.verifying_key()),
        }
    }

    /// Signs `message` (Ed25519: 64 raw bytes; P-256: ASN.1 DER over SHA-256).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519(pair) => pair.sk.sign(message, None).to_vec(),
            Self::P256(sk) => {
                let sig: p256::ecdsa::DerSignature = sk.sign(message);
                sig.as_bytes().to_vec()
            }
        }
    }
}
