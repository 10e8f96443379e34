//! `apps.toml`: the apps a `tessera host` serves, reconciled on start and on SIGHUP.
//!
//! ```toml
//! [[app]]
//! name = "shop"                      # unique: lowercase letters, digits and `-`
//! source = "apps/shop"               # a directory or spin.toml, or REGISTRY/REPOSITORY:TAG
//! hosts = ["shop.example.com"]       # Host headers it answers (port ignored); default: any
//! path_prefix = "/shop"              # default "/": the app's routes live under it
//! runtime_config = "shop-rc.toml"    # its own limits, stores, [trust]
//! state_dir = "state/shop"           # default: <host state dir>/<name>
//! variables = { greeting = "hi" }    # in place of SPIN_VARIABLE_* (not shared between apps)
//! [app.quota]
//! instances = 16                     # instance slots (max_concurrent_requests)
//! queued = 64                        # requests waiting for a slot (max_queued_requests)
//! memory = "64 MiB"                  # memory per instance, at most
//! ```
//! Relative paths are relative to the file.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_manifest::{ManifestError, SourceFile};
use toml::Spanned;

/// One app as the host is told to serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// Its unique name.
    pub name: String,
    /// Where its manifest comes from.
    pub source: AppSource,
    /// `Host` headers it answers, lowercase without port; empty for any.
    pub hosts: Vec<String>,
    /// The path its routes live under (`/` for none).
    pub path_prefix: String,
    /// Its runtime config file.
    pub runtime_config: Option<PathBuf>,
    /// Where its state goes; `None` for the host's default.
    pub state_dir: Option<PathBuf>,
    /// Its variables' values.
    pub variables: BTreeMap<String, String>,
    /// What it may take of the host.
    pub quota: Quota,
}

/// Where an app's manifest comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// A `spin.toml`, a directory holding one, or a component file.
    Local(PathBuf),
    /// A registry reference, pulled first.
    Registry(String),
}

/// What one app may take of the host; `None` keeps its runtime config's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Instance slots.
    pub instances: Option<usize>,
    /// Requests waiting for a slot.
    pub queued: Option<usize>,
    /// Bytes of memory per instance.
    pub memory: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    app: Vec<Spanned<RawApp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Option<Spanned<String>>,
    source: Spanned<String>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    runtime_config: Option<String>,
    state_dir: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    quota: RawQuota,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    instances: Option<Spanned<i64>>,
    queued: Option<Spanned<i64>>,
    memory: Option<Spanned<toml::Value>>,
}

/// Reads and checks `path`.
pub fn read(path: &Path) -> Result<Vec<AppSpec>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|e| ManifestError::whole_file(path, format!("cannot read the apps file: {e}")))?;
    parse(path, &text)
}

/// Checks the text of an apps file read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<AppSpec>, ManifestError> {
    let src = SourceFile::new(path, text);
    let raw: RawFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut specs: Vec<AppSpec> = Vec::new();
    let mut claimed: BTreeMap<(String, String), String> = BTreeMap::new();
    for app in raw.app {
        let (entry_span, app) = (app.span(), app.into_inner());
        let Some(name) = app.name.clone() else {
            return Err(src.error(entry_span, "an [[app]] has no name").with_hint("add `name = \"...\"` to it"));
        };
        let spec = check(&src, base, name.get_ref(), app.name.as_ref().map(|n| n.span()), &app)?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(src.error(name.span(), format!("a second app is named `{}`", spec.name)).with_hint("give each [[app]] a name of its own"));
        }
        // Two apps may not answer the same host and prefix: which one serves would be a guess.
        for key in route_keys(&spec) {
            if let Some(other) = claimed.insert(key.clone(), spec.name.clone()) {
                let at = app.path_prefix.as_ref().map_or(name.span(), |p| p.span());
                return Err(src.error(at, format!("apps `{other}` and `{}` both serve {}", spec.name, describe_route(&key))).with_hint("give one of them another path_prefix or hosts"));
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// Checks one app's entry, sent as the TOML keys of an `[[app]]` (without `name`, which
/// is `name`); `origin` names where it came from in errors, and relative paths are
/// relative to `base`.
pub fn parse_entry(origin: &Path, base: &Path, name: &str, text: &str) -> Result<AppSpec, ManifestError> {
    let src = SourceFile::new(origin, text);
    let raw: RawApp = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    if let Some(other) = raw.name.as_ref().filter(|n| n.get_ref() != name) {
        return Err(src.error(other.span(), format!("the entry is named `{}` but was sent for `{name}`", other.get_ref())).with_hint("drop `name` or make it match"));
    }
    check(&src, base, name, None, &raw)
}

/// The (host, prefix) pairs an app answers; the empty host stands for any.
pub fn route_keys(spec: &AppSpec) -> Vec<(String, String)> {
    if spec.hosts.is_empty() {
        vec![(String::new(), spec.path_prefix.clone())]
    } else {
        spec.hosts.iter().map(|h| (h.clone(), spec.path_prefix.clone())).collect()
    }
}

/// `any host under `/x`` or `host `h` under `/x``.
pub fn describe_route((host, prefix): &(String, String)) -> String {
    if host.is_empty() { format!("any host under `{prefix}`") } else { format!("host `{host}` under `{prefix}`") }
}

fn check(src: &SourceFile<'_>, base: &Path, name: &str, name_span: Option<std::ops::Range<usize>>, app: &RawApp) -> Result<AppSpec, ManifestError> {
    let at = |span: std::ops::Range<usize>, message: String| src.error(span, message);
    let whole = || name_span.clone().unwrap_or(0..0);
    let relative = |p: &str| base.join(p);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(at(whole(), format!("app name `{name}` is not allowed")).with_hint("use lowercase letters, digits and `-`, e.g. `shop-api`"));
    }
    let source_text = app.source.get_ref();
    let source = if tessera_registry::looks_like_reference(source_text, relative(source_text).exists()) {
        AppSource::Registry(source_text.clone())
    } else {
        let local = relative(source_text);
        if !local.exists() {
            return Err(at(app.source.span(), format!("app `{name}`: source {} does not exist", local.display()))
                .with_hint("give a directory holding spin.toml, a spin.toml, a component, or a registry reference REGISTRY/REPOSITORY:TAG"));
        }
        AppSource::Local(local)
    };
    let mut hosts = Vec::new();
    for host in &app.hosts {
        let h = normalize_host(host.get_ref());
        if h.is_empty() || h.contains('/') || h.contains(' ') {
            return Err(at(host.span(), format!("`{}` is not a host name", host.get_ref())).with_hint("write a name as in the Host header, e.g. `shop.example.com`"));
        }
        hosts.push(h);
    }
    let path_prefix = match &app.path_prefix {
        None => "/".to_string(),
        Some(p) if p.get_ref().starts_with('/') && !p.get_ref().contains("...") && !p.get_ref().contains(':') => tessera_manifest::routes::normalize_base(p.get_ref()),
        Some(p) => {
            return Err(at(p.span(), format!("path_prefix `{}` is not a path", p.get_ref())).with_hint("write a path such as `/shop`, with no wildcard or parameter"));
        }
    };
    let count = |v: &Option<Spanned<i64>>, key: &str| -> Result<Option<usize>, ManifestError> {
        match v {
            None => Ok(None),
            Some(n) if *n.get_ref() >= 1 => Ok(Some(*n.get_ref() as usize)),
            Some(n) if key == "queued" && *n.get_ref() == 0 => Ok(Some(0)),
            Some(n) => Err(at(n.span(), format!("quota.{key} of app `{name}` must be at least 1")).with_hint("give a positive number")),
        }
    };
    let memory = match &app.quota.memory {
        None => None,
        Some(v) => {
            let bytes = match v.get_ref() {
                toml::Value::Integer(n) if *n > 0 => Some(*n as u64),
                toml::Value::String(s) => tessera_manifest::parse_size(s).ok(),
                _ => None,
            };
            Some(bytes.ok_or_else(|| at(v.span(), format!("quota.memory of app `{name}` is not a size")).with_hint("write bytes or a size such as \"64 MiB\""))?)
        }
    };
    Ok(AppSpec {
        name: name.to_string(),
        source,
        hosts,
        path_prefix,
        runtime_config: app.runtime_config.as_deref().map(relative),
        state_dir: app.state_dir.as_deref().map(relative),
        variables: app.variables.clone(),
        quota: Quota { instances: count(&app.quota.instances, "instances")?, queued: count(&app.quota.queued, "queued")?, memory },
    })
}

/// A `Host` header as routes compare it: lowercase, without the port.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => name.to_string(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(dir: &Path, text: &str) -> Result<Vec<AppSpec>, String> {
        parse(&dir.join("apps.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_app_is_read_with_paths_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shop")).unwrap();
        let apps = parse_in(
            dir.path(),
            "[[app]]\nname = \"shop\"\nsource = \"shop\"\nhosts = [\"Shop.Example.com:8080\"]\npath_prefix = \"/shop/\"\nvariables = { a = \"1\" }\n[app.quota]\ninstances = 4\nmemory = \"64 MiB\"\n\n[[app]]\nname = \"remote\"\nsource = \"registry.example.com/team/app:1\"\n",
        )
        .unwrap();
        assert_eq!(apps[0].source, AppSource::Local(dir.path().join("shop")));
        assert_eq!(apps[0].hosts, ["shop.example.com"]);
        assert_eq!(apps[0].path_prefix, "/shop");
        assert_eq!(apps[0].quota, Quota { instances: Some(4), queued: None, memory: Some(64 << 20) });
        assert_eq!(apps[1].source, AppSource::Registry("registry.example.com/team/app:1".into()));
        assert_eq!(apps[1].path_prefix, "/");
    }

    #[test]
    fn bad_entries_name_their_line_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let cases = [
            ("[[app]]\nname = \"Shop\"\nsource = \"a\"\n", ":2:8", "lowercase"),
            ("[[app]]\nname = \"a\"\nsource = \"missing\"\n", ":3:10", "does not exist"),
            ("[[app]]\nname = \"a\"\nsource = \"a\"\n[[app]]\nname = \"a\"\nsource = \"a\"\npath_prefix = \"/x\"\n", ":5:8", "a second app"),
            ("[[app]]\nname = \"a\"\nsource = \"a\"\n[[app]]\nname = \"b\"\nsource = \"a\"\n", ":5:8", "both serve any host under `/`"),
            ("[[app]]\nname = \"a\"\nsource = \"a\"\n[app.quota]\ninstances = 0\n", ":5:13", "at least 1"),
            ("[[app]]\nname = \"a\"\nsource = \"a\"\npath_prefix = \"/x/...\"\n", ":4:15", "not a path"),
            ("[[app]]\nname = \"a\"\nsource = \"a\"\nport = 3\n", ":4:1", "unknown field"),
        ];
        for (text, at, message) in cases {
            let err = parse_in(dir.path(), text).unwrap_err();
            assert!(err.contains(&format!("apps.toml{at}")) && err.contains(message), "{text}\n=> {err}");
        }
    }
}
