//! Application variable values, first found wins: `TESSERA_VARIABLE_<NAME>`, then
//! `SPIN_VARIABLE_<NAME>` from the environment; then each `[[variables_provider]]` of the
//! runtime config in order (`env` with its `prefix` and `dotenv_path`, `static` with its
//! `values`); then the manifest default. Secret values never appear in `Debug` output or
//! logs.

use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use tessera_manifest::{BackendTable, Manifest};

/// One `[[variables_provider]]`.
enum Provider {
    /// Environment variables `<prefix>_<NAME>`, then the same keys in a dotenv file.
    Env { prefix: String, dotenv: BTreeMap<String, String> },
    /// Fixed values.
    Static(BTreeMap<String, String>),
}

impl Provider {
    fn from_table(t: &BackendTable) -> Result<Self> {
        match t.kind()? {
            "env" => {
                t.only_keys(&["prefix", "dotenv_path"])?;
                let prefix = t.string("prefix")?.unwrap_or("SPIN_VARIABLE").to_string();
                let mut dotenv = BTreeMap::new();
                if let Some(path) = t.path("dotenv_path")?
                    && path.exists()
                {
                    let entries = dotenvy::from_path_iter(&path)
                        .map_err(|e| t.error(format!("cannot read dotenv file {}: {e}", path.display()), "write it as KEY=value lines"))?;
                    for entry in entries {
                        let (k, v) = entry.map_err(|e| t.error(format!("{}: {e}", path.display()), "write it as KEY=value lines"))?;
                        dotenv.insert(k, v);
                    }
                }
                Ok(Provider::Env { prefix, dotenv })
            }
            "static" => {
                t.only_keys(&["values"])?;
                let values = match t.table.get("values") {
                    None => BTreeMap::new(),
                    Some(toml::Value::Table(v)) => v
                        .iter()
                        .map(|(k, v)| match v {
                            toml::Value::String(s) => Ok((k.clone(), s.clone())),
                            _ => Err(t.error(format!("static value `{k}` must be a string"), format!("write {k} = \"...\""))),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(t.error("`values` must be a table", "write values = { name = \"value\" }").into()),
                };
                Ok(Provider::Static(values))
            }
            other => Err(t
                .error(format!("variables provider type `{other}` is not supported yet"), "use type = \"env\" or type = \"static\"")
                .into()),
        }
    }

    fn get(&self, name: &str, env: &impl Fn(&str) -> Option<String>) -> Option<String> {
        match self {
            Provider::Env { prefix, dotenv } => {
                let key = format!("{prefix}_{}", name.to_ascii_uppercase());
                env(&key).or_else(|| dotenv.get(&key).cloned())
            }
            Provider::Static(values) => values.get(name).cloned(),
        }
    }
}

/// Resolved values of `[variables]`.
#[derive(Clone, Default)]
pub struct Variables {
    values: BTreeMap<String, String>,
    secret: BTreeSet<String>,
}

impl Variables {
    /// Resolves every variable from the environment, the providers and defaults.
    pub fn resolve(manifest: &Manifest, providers: &[BackendTable]) -> Result<Self> {
        Self::resolve_with(manifest, providers, |key| std::env::var(key).ok())
    }

    /// Resolves with `lookup` standing in for the environment.
    pub fn resolve_with(
        manifest: &Manifest,
        providers: &[BackendTable],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let providers = providers.iter().map(Provider::from_table).collect::<Result<Vec<_>>>()?;
        let mut values = BTreeMap::new();
        let mut secret = BTreeSet::new();
        for (name, var) in &manifest.variables {
            let upper = name.to_ascii_uppercase();
            let value = lookup(&format!("TESSERA_VARIABLE_{upper}"))
                .or_else(|| lookup(&format!("SPIN_VARIABLE_{upper}")))
                .or_else(|| providers.iter().find_map(|p| p.get(name, &lookup)))
                .or_else(|| var.default.clone());
            let Some(value) = value else {
                return Err(crate::located(
                    manifest,
                    var.location,
                    format!("variable `{name}` is required but has no value"),
                    &format!("set SPIN_VARIABLE_{upper} (or TESSERA_VARIABLE_{upper}) in the environment, pass --variable {name}=VALUE, add it to a [[variables_provider]] of the runtime config, or give [variables.{name}] a default"),
                ));
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
        let v = Variables::resolve_with(&m, &[], env).unwrap();
        assert_eq!(v.values()["token"], "s3cr3t");
        assert_eq!(v.values()["greeting"], "hi");
        assert!(!format!("{v:?}").contains("s3cr3t"));
        assert_eq!(v.display_value("token"), Some("<secret>"));
    }

    #[test]
    fn providers_come_after_the_environment_in_order() {
        let m = Manifest::parse(Path::new("/a/spin.toml"), MANIFEST).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "MYAPP_TOKEN=from-dotenv\n").unwrap();
        let rc_path = dir.path().join("rc.toml");
        let rc = tessera_manifest::RuntimeConfig::parse(
            &rc_path,
            "[[variables_provider]]\ntype = \"env\"\nprefix = \"MYAPP\"\ndotenv_path = \".env\"\n[[variables_provider]]\ntype = \"static\"\nvalues = { token = \"static\", greeting = \"static-greeting\" }\n",
        )
        .unwrap();
        let v = Variables::resolve_with(&m, &rc.variables_providers, |_| None).unwrap();
        assert_eq!(v.values()["token"], "from-dotenv");
        assert_eq!(v.values()["greeting"], "static-greeting");
        let env = |k: &str| (k == "MYAPP_TOKEN").then(|| "from-env".to_string());
        assert_eq!(Variables::resolve_with(&m, &rc.variables_providers, env).unwrap().values()["token"], "from-env");
        let bad = tessera_manifest::RuntimeConfig::parse(&rc_path, "[[variables_provider]]\ntype = \"vault\"\n").unwrap();
        let err = Variables::resolve_with(&m, &bad.variables_providers, |_| None).unwrap_err().to_string();
        assert!(err.contains("rc.toml:1:1") && err.contains("`vault` is not supported yet"), "{err}");
    }

    #[test]
    fn required_without_value_is_an_error_naming_the_fix() {
        let m = Manifest::parse(Path::new("/a/spin.toml"), MANIFEST).unwrap();
        let err = Variables::resolve_with(&m, &[], |_| None).unwrap_err().to_string();
        assert!(err.contains("`token` is required") && err.contains("SPIN_VARIABLE_TOKEN"), "{err}");
    }
}
