//! `[component.<id>.dependencies]`: what satisfies a component's imports, read as Spin 4.x
//! reads it (its `ComponentDependency` forms, its name rules and its checks).

use crate::manifest::Location;
use std::fmt;
use std::path::PathBuf;

/// The capability groups a dependency may inherit from its parent, as Spin names them.
pub const INHERIT_KEYS: [&str; 7] =
    ["ai_models", "allowed_outbound_hosts", "environment", "files", "key_value_stores", "sqlite_databases", "variables"];

/// One entry of `[component.<id>.dependencies]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The key: which imports it satisfies.
    pub name: DependencyName,
    /// Where the implementing component comes from.
    pub source: DependencySource,
    /// `export`: the dependency's export to use, when it is not named as the import.
    pub export: Option<String>,
    /// What of its parent's configuration it may use (nothing unless said).
    pub inherit: Inherit,
    /// Where the entry is written.
    pub location: Location,
}

/// A dependency key, matched against the component's imports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DependencyName {
    /// A plain kebab-case import name (`"calculator"`).
    Plain(String),
    /// A package (`ns:pkg`, every `ns:pkg/*` import) or one interface of it
    /// (`ns:pkg/iface`), optionally at one version (`@1.2.3`).
    Package(PackageName),
}

/// `ns:pkg[/iface][@version]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PackageName {
    /// `ns:pkg`.
    pub package: String,
    /// `iface`.
    pub interface: Option<String>,
    /// `version`, exact.
    pub version: Option<semver::Version>,
}

impl fmt::Display for DependencyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(name) => f.write_str(name),
            Self::Package(p) => {
                f.write_str(&p.package)?;
                if let Some(interface) = &p.interface {
                    write!(f, "/{interface}")?;
                }
                if let Some(version) = &p.version {
                    write!(f, "@{version}")?;
                }
                Ok(())
            }
        }
    }
}

impl DependencyName {
    /// Reads a key as Spin does: with `:` or `/` it is a package name, else a plain name.
    pub fn parse(key: &str) -> Result<Self, String> {
        if !key.contains([':', '/']) {
            return if is_kebab(key) {
                Ok(Self::Plain(key.to_string()))
            } else {
                Err(format!("dependency name `{key}` is neither kebab-case nor `namespace:package[/interface][@version]`"))
            };
        }
        let (name, version) = match key.split_once('@') {
            Some((name, version)) => {
                let version = semver::Version::parse(version)
                    .map_err(|e| format!("dependency name `{key}`: `{version}` is not a version ({e}); a key names one exact version, ranges go in the value"))?;
                (name, Some(version))
            }
            None => (key, None),
        };
        let (package, interface) = match name.split_once('/') {
            Some((package, interface)) => (package, Some(interface)),
            None => (name, None),
        };
        let valid_package = package.split_once(':').is_some_and(|(ns, pkg)| is_kebab(ns) && is_kebab(pkg));
        if !valid_package {
            return Err(format!("dependency name `{key}`: `{package}` is not `namespace:package` in kebab-case"));
        }
        if let Some(interface) = interface
            && !is_kebab(interface)
        {
            return Err(format!("dependency name `{key}`: interface `{interface}` is not kebab-case"));
        }
        Ok(Self::Package(PackageName { package: package.to_string(), interface: interface.map(str::to_string), version }))
    }

    /// Whether this key names the component import `import`, by Spin's rules: a package
    /// matches every interface of it, an interface with or without its version, a
    /// versioned key only that exact version, a plain name only the same plain import.
    pub fn matches_import(&self, import: &str) -> bool {
        match self {
            Self::Plain(name) => name == import,
            Self::Package(key) => {
                let (name, version) = match import.split_once('@') {
                    Some((name, version)) => (name, semver::Version::parse(version).ok()),
                    None => (import, None),
                };
                let Some((package, interface)) = name.split_once('/') else {
                    return false;
                };
                package == key.package
                    && key.interface.as_deref().is_none_or(|i| i == interface)
                    && key.version.as_ref().is_none_or(|v| Some(v) == version.as_ref())
            }
        }
    }
}

/// Where a dependency's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencySource {
    /// `"ns:pkg" = ">=0.1.0"` or `{ version, registry?, package? }`: from a registry.
    Registry {
        /// The version requirement, as written.
        version: String,
        /// `registry`, or the default one.
        registry: Option<String>,
        /// `package`, or the key's own package.
        package: Option<String>,
    },
    /// `{ path }`, relative to the manifest's directory.
    Path(PathBuf),
    /// `{ url, digest }`.
    Url {
        /// The download.
        url: String,
        /// `sha256:` and 64 hex digits.
        digest: String,
    },
    /// `{ component = "id" }`: another component of the app.
    Component(String),
}

/// What of its parent's configuration a dependency may use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Inherit {
    /// Nothing: every capability call is denied (the default).
    #[default]
    Nothing,
    /// Everything the parent is granted.
    Everything,
    /// The groups named (each one of [`INHERIT_KEYS`]).
    Keys(Vec<String>),
}

/// Lowercase letters, digits and single hyphens, each word starting with a letter.
fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|word| word.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(key: &str) -> DependencyName {
        DependencyName::parse(key).unwrap()
    }

    #[test]
    fn keys_match_imports_as_spin_matches_them() {
        assert!(name("my:pkg").matches_import("my:pkg/calc@0.1.0"));
        assert!(name("my:pkg").matches_import("my:pkg/other"));
        assert!(!name("my:pkg").matches_import("my:pkgs/calc"));
        assert!(name("my:pkg/calc").matches_import("my:pkg/calc@0.1.0"));
        assert!(name("my:pkg/calc").matches_import("my:pkg/calc"));
        assert!(!name("my:pkg/calc").matches_import("my:pkg/calculator"));
        assert!(name("my:pkg/calc@0.1.0").matches_import("my:pkg/calc@0.1.0"));
        assert!(!name("my:pkg/calc@0.1.0").matches_import("my:pkg/calc@0.1.1"));
        assert!(!name("my:pkg/calc@0.1.0").matches_import("my:pkg/calc"));
        assert!(name("my:pkg@1.0.0").matches_import("my:pkg/calc@1.0.0"));
        assert!(name("calculator").matches_import("calculator"));
        assert!(!name("calculator").matches_import("my:calculator/calculator"));
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        for (key, why) in [
            ("Calculator", "neither kebab-case"),
            ("my:pkg@^1.0", "is not a version"),
            ("mypkg/calc", "is not `namespace:package`"),
            ("my:pkg/Calc", "interface `Calc` is not kebab-case"),
        ] {
            let e = DependencyName::parse(key).unwrap_err();
            assert!(e.contains(why), "{key}: {e}");
        }
        assert_eq!(name("my:pkg/calc@0.1.0").to_string(), "my:pkg/calc@0.1.0");
    }
}
