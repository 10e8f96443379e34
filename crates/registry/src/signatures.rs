//! Artifact signatures stored the way cosign stores them: beside the artifact, under the
//! tag `sha256-<hex>.sig` of the same repository, an image whose layers are simple-signing
//! payloads (`application/vnd.dev.cosign.simplesigning.v1+json`) each annotated with its
//! base64 signature. `cosign verify --key KEY.pub --insecure-ignore-tlog REF` reads them;
//! more signers append layers.

use crate::blobs::digest_of;
use crate::oci::{RegistryOptions, auth_for, explain};
use anyhow::{Context as _, Result, bail};
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::{Client, Reference};
use std::collections::BTreeMap;
use tessera_signing::artifact::{PAYLOAD_MEDIA_TYPE, SIGNATURE_ANNOTATION, check, payload};
use tessera_signing::{PublicKey, SecretKey};

/// The artifact a signature is about.
#[derive(Debug)]
pub struct ArtifactSignature {
    /// The artifact's manifest digest.
    pub digest: String,
    /// Where the signature is stored (`REPO:sha256-<hex>.sig`).
    pub signature_reference: String,
    /// The fingerprint of the signing or verifying key.
    pub key: String,
}

/// The artifact's digest: the reference's own, or what its tag points at now.
async fn resolve(client: &Client, options: &RegistryOptions, reference: &Reference) -> Result<String> {
    if let Some(d) = reference.digest() {
        return Ok(d.to_string());
    }
    client.fetch_manifest_digest(reference, &auth_for(reference)).await.map_err(|e| explain(e, reference, "find", options.insecure))
}

fn signature_tag(reference: &Reference, digest: &str) -> Reference {
    Reference::with_tag(reference.registry().to_string(), reference.repository().to_string(), digest.replace(':', "-") + ".sig")
}

/// Signs the artifact at `reference` with `key`, adding to any signatures already there.
pub async fn sign_artifact(reference: &Reference, key: &SecretKey, options: &RegistryOptions) -> Result<ArtifactSignature> {
    use base64::Engine as _;
    let client = options.client();
    let auth = auth_for(reference);
    client
        .auth(reference, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| explain(e, reference, "sign", options.insecure))?;
    let digest = resolve(&client, options, reference).await?;
    let sig_ref = signature_tag(reference, &digest);
    let body = payload(&format!("{}/{}", reference.registry(), reference.repository()), &digest);
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&body));

    let mut layers: Vec<OciDescriptor> = match client.pull_image_manifest(&sig_ref, &auth).await {
        Ok((existing, _)) => existing.layers,
        Err(_) => Vec::new(),
    };
    client.push_blob(&sig_ref, body.clone(), &digest_of(&body)).await.map_err(|e| explain(e, &sig_ref, "push the signature to", options.insecure))?;
    let mut annotations = BTreeMap::new();
    annotations.insert(SIGNATURE_ANNOTATION.to_string(), signature);
    layers.retain(|l| l.digest != digest_of(&body) || l.annotations.as_ref().and_then(|a| a.get(SIGNATURE_ANNOTATION)) != annotations.get(SIGNATURE_ANNOTATION));
    layers.push(OciDescriptor {
        media_type: PAYLOAD_MEDIA_TYPE.into(),
        digest: digest_of(&body),
        size: body.len() as i64,
        urls: None,
        annotations: Some(annotations),
        ..Default::default()
    });
    // The config cosign writes: the payloads as the image's layers.
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = serde_json::json!({
        "architecture": "", "os": "", "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = Config::new(serde_json::to_vec(&config)?, "application/vnd.oci.image.config.v1+json".into(), None);
    client
        .push_blob(&sig_ref, config.data.clone(), &config.sha256_digest())
        .await
        .map_err(|e| explain(e, &sig_ref, "push the signature to", options.insecure))?;
    let mut manifest = OciImageManifest::build(&Vec::<ImageLayer>::new(), &config, None);
    manifest.layers = layers;
    client
        .push_manifest(&sig_ref, &OciManifest::Image(manifest))
        .await
        .map_err(|e| explain(e, &sig_ref, "push the signature to", options.insecure))?;
    Ok(ArtifactSignature { digest, signature_reference: sig_ref.to_string(), key: key.public().fingerprint() })
}

/// Verifies that the artifact at `reference` carries a signature by one of `keys`.
pub async fn verify_artifact(reference: &Reference, keys: &[PublicKey], options: &RegistryOptions) -> Result<ArtifactSignature> {
    let client = options.client();
    let auth = auth_for(reference);
    let digest = resolve(&client, options, reference).await?;
    let sig_ref = signature_tag(reference, &digest);
    let (manifest, _) = client
        .pull_image_manifest(&sig_ref, &auth)
        .await
        .map_err(|_| anyhow::anyhow!("{reference}@{digest} has no signature (nothing at {sig_ref}); sign it with `tessera sign {reference} --key KEY`"))?;
    let mut reasons = Vec::new();
    for layer in manifest.layers.iter().filter(|l| l.media_type == PAYLOAD_MEDIA_TYPE) {
        let Some(signature) = layer.annotations.as_ref().and_then(|a| a.get(SIGNATURE_ANNOTATION)) else { continue };
        let mut body = Vec::new();
        client.pull_blob(&sig_ref, layer, &mut body).await.map_err(|e| explain(e, &sig_ref, "download a signature from", options.insecure))?;
        if digest_of(&body) != layer.digest {
            reasons.push(format!("payload {} does not match its digest", layer.digest));
            continue;
        }
        match check(&body, signature, &digest, keys) {
            Ok(key) => return Ok(ArtifactSignature { digest, signature_reference: sig_ref.to_string(), key: key.fingerprint() }),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    if reasons.is_empty() {
        bail!("{sig_ref} holds no cosign signature payload");
    }
    Err(anyhow::anyhow!("no signature on {reference}@{digest} is by a trusted key: {}", reasons.join("; ")))
        .context(format!("checked {} signature(s) against {} trusted key(s)", reasons.len(), keys.len()))
}
