//! Application variable values: `TESSERA_VARIABLE_<NAME>`, then `SPIN_VARIABLE_<NAME>`,
//! then the manifest default. Secret values never appear in `Debug` output or logs.

use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use tessera_manifest::Manifest;

/// Resolved values of `[variables]`.
#[derive(Clone, Default)]
pub struct Variables {
    values: BTreeMap<String, String>,
    secret: BTreeSet<String>,
}

impl Variables {
    /// Resolves every variable from the environment and defaults.
    pub fn resolve(manifest: &Manifest) -> Result<Self> {
        Self::resolve_with(manifest, |key| std::env::var(key).ok())
    }

    /// Resolves with `lookup` standing in for the environment.
    pub fn resolve_with(manifest: &Manifest, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut values = BTreeMap::new();
        let mut secret = BTreeSet::new();
        for (name, var) in &manifest.variables {
            let upper = name.to_ascii_uppercase();
            let value = lookup(&format!("TESSERA_VARIABLE_{upper}"))
                .or_else(|| lookup(&format!("SPIN_VARIABLE_{upper}")))
                .or_else(|| var.default.clone());
            let Some(value) = value else {
                anyhow::bail!(
                    "{}: variable `{name}` is required but has no value\n  hint: set SPIN_VARIABLE_{upper} (or TESSERA_VARIABLE_{upper}) in the environment, or give [variables.{name}] a default",
                    manifest.path.display()
                );
            };
            if var.secret {
                secret.insert(name.clone());
            }
            values.insert(name.clone(), value);
        }
        Ok(Self { values, secret })
    }

    /// Every value by name (secrets included: do not print).
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Whether `name` is secret.
    pub fn is_secret(&self, name: &str) -> bool {
        self.secret.contains(name)
    }

    /// A value safe to print: secrets are masked.
    pub fn display_value(&self, name: &str) -> Option<&str> {
        let v = self.values.get(name)?;
        Some(if self.is_secret(name) { "<secret>" } else { v })
    }
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for name in self.values.keys() {
            map.entry(name, &self.display_value(name).unwrap_or_default());
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "v"
[variables]
token = { required = true, secret = true }
greeting = { default = "hello" }
[[trigger.http]]
route = "/"
static_response = { body = "x" }
"#;

    #[test]
    fn environment_then_default_and_secrets_masked() {
        let m = Manifest::parse(Path::new("/a/spin.toml"), MANIFEST).unwrap();
        let env = |k: &str| match k {
            "SPIN_VARIABLE_TOKEN" => Some("s3cr3t".to_string()),
            "TESSERA_VARIABLE_GREETING" => Some("hi".to_string()),
            "SPIN_VARIABLE_GREETING" => Some("ignored".to_string()),
            _ => None,
        };
        let v = Variables::resolve_with(&m, env).unwrap();
        assert_eq!(v.values()["token"], "s3cr3t");
        assert_eq!(v.values()["greeting"], "hi");
        assert!(!format!("{v:?}").contains("s3cr3t"));
        assert_eq!(v.display_value("token"), Some("<secret>"));
    }

    #[test]
    fn required_without_value_is_an_error_naming_the_fix() {
        let m = Manifest::parse(Path::new("/a/spin.toml"), MANIFEST).unwrap();
        let err = Variables::resolve_with(&m, |_| None).unwrap_err().to_string();
        assert!(err.contains("`token` is required") && err.contains("SPIN_VARIABLE_TOKEN"), "{err}");
    }
}
