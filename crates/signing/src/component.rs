//! Signatures on component files. Ed25519 keys sign in the WebAssembly signatures format
//! (`wasmsign2`: a `signature` custom section inside the component, so the signature
//! travels with the file, through registries too). The format has no P-256 algorithm, so
//! P-256 keys write a detached `FILE.wasm.sig` as `cosign sign-blob` does: base64 of the
//! DER ECDSA-SHA256 signature of the file, checkable with `cosign verify-blob` or OpenSSL.

use crate::keys::{PublicKey, SecretKey};
use anyhow::{Result, anyhow};
use base64::Engine as _;

/// What signing produced.
pub enum Signed {
    /// The component with its signature section; replaces the file.
    Embedded(Vec<u8>),
    /// The detached signature, written beside the file as `FILE.sig`.
    Detached(String),
}

/// Signs a component's bytes with `key` (Ed25519: embedded; P-256: detached).
pub fn sign(component: &[u8], key: &SecretKey) -> Result<Signed> {
    match key {
        SecretKey::Ed25519(pair) => {
            let mut raw = vec![0x81];
            raw.extend_from_slice(&pair.sk[..]);
            let sk = wasmsign2::SecretKey::from_bytes(&raw).map_err(|e| anyhow!("{e}"))?;
            let module = wasmsign2::Module::deserialize(&mut &component[..]).map_err(|e| anyhow!("not a Wasm component or module: {e}"))?;
            let signed = sk.sign(module, wasm_public_key(&pair.pk).key_id()).map_err(|e| anyhow!("{e}"))?;
            let mut out = Vec::with_capacity(component.len() + 200);
            signed.serialize(&mut out).map_err(|e| anyhow!("{e}"))?;
            Ok(Signed::Embedded(out))
        }
        SecretKey::P256(_) => Ok(Signed::Detached(base64::engine::general_purpose::STANDARD.encode(key.sign(component)))),
    }
}

/// How a component was found to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    /// The fingerprint of the key whose signature verified.
    pub key: String,
    /// `embedded`, `detached` or `artifact`.
    pub how: &'static str,
}

/// Why a component is not trusted, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// No signature at all.
    Unsigned,
    /// A signature by a trusted key that does not match the content: changed after signing.
    Tampered {
        /// The trusted key's fingerprint.
        key: String,
    },
    /// Signed, but by no key on the list.
    UnknownKey {
        /// What identifies the signer (wasmsign2 key ids, or "a detached signature").
        signer: String,
    },
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsigned => f.write_str("it is not signed"),
            Self::Tampered { key } => write!(f, "it was changed after it was signed: the signature by trusted key {key} does not match its content"),
            Self::UnknownKey { signer } => write!(f, "it is signed by a key that is not trusted ({signer})"),
        }
    }
}

/// Checks `component` (and its detached signature, if any) against `keys`.
pub fn check(component: &[u8], detached: Option<&str>, keys: &[PublicKey]) -> Result<Trusted, Untrusted> {
    if let Some(sig) = detached {
        let sig = base64::engine::general_purpose::STANDARD.decode(sig.trim()).unwrap_or_default();
        if let Some(key) = keys.iter().find(|k| k.verify(component, &sig)) {
            return Ok(Trusted { key: key.fingerprint(), how: "detached" });
        }
    }
    for key in keys {
        if let PublicKey::Ed25519(pk) = key
            && wasm_public_key(pk).verify(&mut &component[..], None).is_ok()
        {
            return Ok(Trusted { key: key.fingerprint(), how: "embedded" });
        }
    }
    // Only on refusal: which signer, to tell a changed file from a stranger's key.
    if let Some(ids) = &embedded_key_ids(component) {
        let tampered = keys.iter().find(|k| match k {
            PublicKey::Ed25519(pk) => wasm_public_key(pk).key_id().is_some_and(|id| ids.contains(id)),
            PublicKey::P256(_) => false,
        });
        return Err(match tampered {
            Some(key) => Untrusted::Tampered { key: key.fingerprint() },
            None => Untrusted::UnknownKey { signer: format!("embedded signature, wasmsign2 key id {}", ids.iter().map(hex::encode).collect::<Vec<_>>().join(", ")) },
        });
    }
    match detached {
        Some(_) => Err(Untrusted::UnknownKey {
            signer: "its detached .sig verifies with no trusted key; if the file changed after signing, sign it again".into(),
        }),
        None => Err(Untrusted::Unsigned),
    }
}

/// The key ids of an embedded signature section, or `None` when there is none.
fn embedded_key_ids(component: &[u8]) -> Option<Vec<Vec<u8>>> {
    let module = wasmsign2::Module::deserialize(&mut &component[..]).ok()?;
    let info = module.signature_info().ok()?;
    info.is_signed().then(|| info.key_ids().to_vec())
}

/// Whether `component` carries an embedded signature, and by which key ids (hex).
pub fn embedded_signers(component: &[u8]) -> Option<Vec<String>> {
    embedded_key_ids(component).map(|ids| ids.iter().map(hex::encode).collect())
}

/// The wasmsign2 form of an Ed25519 public key, with its default key id.
fn wasm_public_key(pk: &[u8; 32]) -> wasmsign2::PublicKey {
    let mut raw = vec![0x01];
    raw.extend_from_slice(pk);
    wasmsign2::PublicKey::from_bytes(&raw).expect("a 32-byte Ed25519 key").attach_default_key_id()
}
