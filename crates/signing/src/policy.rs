//! The `[trust]` runtime-config policy: every component must be signed by one of the
//! listed keys, or come from a registry artifact signed by one.
//!
//! ```toml
//! [trust]
//! keys = ["keys/release.pub", "ssh-ed25519 AAAA... ci@example.com"]
//! ```

use crate::component::{self, Trusted, Untrusted};
use crate::keys::PublicKey;
use anyhow::Result;
use tessera_manifest::{BackendTable, ManifestError};

/// The keys `[trust]` allows.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// The allowed keys, in the order listed.
    pub keys: Vec<PublicKey>,
    table: BackendTable,
}

impl TrustPolicy {
    /// Reads `[trust]`: `keys` holds key files (relative to the runtime-config file) or
    /// keys written inline (PEM or an OpenSSH line).
    pub fn from_table(table: &BackendTable) -> Result<Self, ManifestError> {
        table.only_keys(&["keys"])?;
        let hint = "list public keys: keys = [\"keys/release.pub\"] (PEM or OpenSSH, Ed25519 or P-256)";
        let entries = match table.table.get("keys") {
            Some(toml::Value::Array(a)) if !a.is_empty() => a,
            _ => return Err(table.error("[trust] needs `keys`, a non-empty list of public keys", hint)),
        };
        let dir = table.file.parent().unwrap_or(std::path::Path::new("."));
        let mut keys = Vec::new();
        for entry in entries {
            let Some(text) = entry.as_str() else {
                return Err(table.error("every entry of [trust].keys must be a string", hint));
            };
            let inline = text.starts_with("-----BEGIN") || text.starts_with("ssh-") || text.starts_with("ecdsa-");
            let key = if inline { PublicKey::parse(text) } else { PublicKey::from_file(&dir.join(text)) };
            let key = key.map_err(|e| table.error(format!("[trust].keys entry `{}`: {e:#}", short(text)), hint))?;
            keys.push(key);
        }
        Ok(Self { keys, table: table.clone() })
    }

    /// Checks one component: its embedded or detached signature, or `artifact_key` when
    /// it came from a registry artifact whose signature by that trusted key was verified.
    pub fn check(&self, component: &[u8], detached: Option<&str>, artifact_key: Option<&str>) -> Result<Trusted, Untrusted> {
        match component::check(component, detached, &self.keys) {
            Ok(t) => Ok(t),
            Err(reason) => match artifact_key {
                Some(key) => Ok(Trusted { key: key.to_string(), how: "artifact" }),
                None => Err(reason),
            },
        }
    }

    /// The refusal of component `id`, naming the policy's file.
    pub fn refusal(&self, id: &str, source: &std::path::Path, reason: &Untrusted) -> ManifestError {
        let hint = match reason {
            Untrusted::Unsigned | Untrusted::Tampered { .. } => {
                format!("sign it with `tessera sign {} --key KEY` using a key listed in [trust].keys, or push it as a signed artifact", source.display())
            }
            Untrusted::UnknownKey { .. } => "add the signer's public key to [trust].keys if you trust it, or sign with a listed key".to_string(),
        };
        self.table.error(format!("[trust] refuses component `{id}` ({}): {reason}", source.display()), hint)
    }
}

fn short(text: &str) -> String {
    if text.len() > 40 { format!("{}...", &text[..40]) } else { text.to_string() }
}
