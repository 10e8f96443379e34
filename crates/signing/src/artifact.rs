//! Signatures on registry artifacts in cosign's format: a "simple signing" JSON payload
//! naming the artifact's manifest digest, signed by the key. The registry side (the
//! `sha256-<hex>.sig` tag holding the payload and its signature annotation) is in
//! tessera-registry; this module only builds and checks payloads.

use crate::keys::PublicKey;
use anyhow::{Context as _, Result, bail};

/// The layer media type cosign gives a signature payload.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The payload cosign signs for the artifact `repository` (`registry/repo`) at `digest`.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes()
}

/// The key among `keys` whose signature `signature_b64` of `payload` verifies, provided the
/// payload names `digest`; an error says what did not hold.
pub fn check<'k>(payload: &[u8], signature_b64: &str, digest: &str, keys: &'k [PublicKey]) -> Result<&'k PublicKey> {
    use base64::Engine as _;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .context("the signature annotation is not base64")?;
    let key = keys
        .iter()
        .find(|k| k.verify(payload, &signature))
        .context("the signature verifies with none of the trusted keys")?;
    let json: serde_json::Value = serde_json::from_slice(payload).context("the signed payload is not JSON")?;
    let signed = json.pointer("/critical/image/docker-manifest-digest").and_then(|v| v.as_str()).unwrap_or("");
    if signed != digest {
        bail!("the signature is for {signed}, not for this artifact ({digest})");
    }
    Ok(key)
}
