//! Version 1 manifests (`spin_manifest_version = "1"`, `[[component]]` with a `trigger`
//! table each), converted to version 2 the way Spin's manifest `compat` module does: the
//! app's `trigger` becomes `[application.trigger.<type>]`, each component gets a trigger
//! `trigger-<id>`, `config` becomes `variables`, and `allowed_http_hosts` becomes
//! `allowed_outbound_hosts` (with the database access version 1 allowed by default when
//! the component gives no `allowed_outbound_hosts`).

use crate::ManifestError;
use std::path::Path;
use toml::{Table, Value};

/// Whether `table` is a version 1 manifest.
pub(crate) fn is_version_one(table: &Table) -> bool {
    ["spin_manifest_version", "spin_version"].iter().any(|key| table.get(*key).and_then(Value::as_str) == Some("1"))
}

/// The version 2 text of the version 1 manifest `v1` read from `path`.
pub(crate) fn v1_to_v2(path: &Path, mut v1: Table) -> Result<String, ManifestError> {
    let err = |message: String, hint: &str| ManifestError::whole_file(path, format!("(manifest version 1) {message}")).with_hint(hint);
    v1.remove("spin_manifest_version");
    v1.remove("spin_version");
    let mut application = Table::new();
    match v1.remove("name") {
        Some(Value::String(name)) => application.insert("name".into(), Value::String(name)),
        _ => return Err(err("`name` is missing or not a string".into(), "add name = \"my-app\"")),
    };
    for key in ["version", "description", "authors"] {
        if let Some(value) = v1.remove(key) {
            application.insert(key.into(), value);
        }
    }
    let Some(Value::Table(mut app_trigger)) = v1.remove("trigger") else {
        return Err(err("`trigger` is missing or not a table".into(), "add trigger = { type = \"http\" }"));
    };
    let Some(Value::String(trigger_type)) = app_trigger.remove("type") else {
        return Err(err("`trigger` has no `type`".into(), "write trigger = { type = \"http\" } (or \"redis\")"));
    };
    if !app_trigger.is_empty() {
        let mut triggers = Table::new();
        triggers.insert(trigger_type.clone(), Value::Table(app_trigger));
        application.insert("trigger".into(), Value::Table(triggers));
    }
    let variables = v1.remove("variables");
    let components = match v1.remove("component") {
        None => Vec::new(),
        Some(Value::Array(components)) => components,
        Some(_) => return Err(err("`component` must be an array of tables".into(), "write each component as [[component]]")),
    };
    if let Some(key) = v1.keys().next() {
        return Err(err(format!("unknown key `{key}`"), "remove it; version 1 manifests have name, version, description, authors, trigger, variables and [[component]]"));
    }

    let (mut v2_triggers, mut v2_components) = (Vec::new(), Table::new());
    for (n, component) in components.into_iter().enumerate() {
        let Value::Table(mut component) = component else {
            return Err(err(format!("component {} is not a table", n + 1), "write each component as [[component]]"));
        };
        let Some(Value::String(id)) = component.remove("id") else {
            return Err(err(format!("component {} has no `id`", n + 1), "add id = \"my-component\""));
        };
        // As Spin: under_scores and mixedCase become kebab-case.
        let id = if crate::is_component_id(&id) { id } else { id.replace('_', "-").to_lowercase() };
        let Some(Value::Table(trigger)) = component.remove("trigger") else {
            return Err(err(format!("component `{id}` has no `trigger` table"), "add trigger = { route = \"/...\" } (or { channel = \"...\" })"));
        };
        let mut entry = Table::new();
        entry.insert("id".into(), Value::String(format!("trigger-{id}")));
        entry.insert("component".into(), Value::String(id.clone()));
        entry.extend(trigger);
        v2_triggers.push(Value::Table(entry));

        let mut v2 = Table::new();
        if let Some(config) = component.remove("config") {
            v2.insert("variables".into(), config);
        }
        let http_hosts: Vec<String> = match component.remove("allowed_http_hosts") {
            None => Vec::new(),
            Some(Value::Array(hosts)) => hosts.into_iter().map(|h| h.as_str().map(str::to_string)).collect::<Option<_>>().ok_or_else(|| {
                err(format!("component `{id}`: allowed_http_hosts must be strings"), "write allowed_http_hosts = [\"example.com\"]")
            })?,
            Some(_) => return Err(err(format!("component `{id}`: allowed_http_hosts must be an array"), "write allowed_http_hosts = [\"example.com\"]")),
        };
        let given = component.remove("allowed_outbound_hosts");
        let converted = outbound_hosts(&http_hosts, given.is_none()).map_err(|e| err(format!("component `{id}`: {e}"), "write host, host:port or http(s)://host[:port] entries, or insecure:allow-all"))?;
        let mut hosts = match given {
            Some(Value::Array(hosts)) => hosts,
            Some(_) => return Err(err(format!("component `{id}`: allowed_outbound_hosts must be an array"), "write allowed_outbound_hosts = [\"https://example.com\"]")),
            None => Vec::new(),
        };
        hosts.extend(converted.into_iter().map(Value::String));
        if !hosts.is_empty() {
            v2.insert("allowed_outbound_hosts".into(), Value::Array(hosts));
        }
        for key in ["source", "description", "environment", "files", "exclude_files", "key_value_stores", "sqlite_databases", "ai_models", "build"] {
            if let Some(value) = component.remove(key) {
                v2.insert(key.into(), value);
            }
        }
        if let Some(key) = component.keys().next() {
            return Err(err(format!("component `{id}`: unknown key `{key}`"), "remove it"));
        }
        if v2_components.insert(id.clone(), Value::Table(v2)).is_some() {
            return Err(err(format!("two components have the id `{id}`"), "give each component its own id"));
        }
    }

    let mut v2 = Table::new();
    v2.insert("spin_manifest_version".into(), Value::Integer(2));
    v2.insert("application".into(), Value::Table(application));
    if let Some(variables) = variables {
        v2.insert("variables".into(), variables);
    }
    let mut triggers = Table::new();
    triggers.insert(trigger_type, Value::Array(v2_triggers));
    v2.insert("trigger".into(), Value::Table(triggers));
    v2.insert("component".into(), Value::Table(v2_components));
    toml::to_string(&v2).map_err(|e| err(format!("cannot convert to version 2: {e}"), "convert the manifest to version 2 by hand"))
}

/// `allowed_http_hosts` as version 2 `allowed_outbound_hosts`, as Spin converts them.
fn outbound_hosts(http_hosts: &[String], allow_database_access: bool) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = if allow_database_access { ["redis://*:*", "mysql://*:*", "postgres://*:*"].map(String::from).to_vec() } else { Vec::new() };
    if http_hosts.iter().any(|h| h == "insecure:allow-all") {
        out.extend(["http://*:*", "https://*:*", "http://self"].map(String::from));
        return Ok(out);
    }
    for host in http_hosts {
        if host == "self" {
            out.push("http://self".into());
            continue;
        }
        let rest = match host.split_once("://") {
            Some(("http" | "https", rest)) => rest,
            Some(_) => return Err(format!("{host} isn't a valid host or host:port string")),
            None => host.as_str(),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(format!("{host} contains a path, should be host and optional port only"));
        }
        let (name, port) = match authority.rsplit_once(':') {
            Some((name, port)) => (name, Some(port.parse::<u16>().map_err(|_| format!("{host} isn't a valid host or host:port string"))?)),
            None => (authority, None),
        };
        if name.is_empty() || name.contains(['@', '?', '#', ' ']) {
            return Err(format!("{host} doesn't contain a host name"));
        }
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        out.push(format!("http://{name}{port}"));
        out.push(format!("https://{name}{port}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_manifest_converts_as_spin_converts_it() {
        let v1: Table = toml::from_str(
            r#"
spin_manifest_version = "1"
name = "old-app"
version = "1.0.0"
trigger = { type = "http", base = "/" }
[variables]
greeting = { default = "hi" }
[[component]]
id = "hello_World"
source = "hello.wasm"
allowed_http_hosts = ["example.com", "https://api.example.com:8443", "self"]
config = { message = "{{ greeting }}" }
[component.trigger]
route = "/hello/..."
"#,
        )
        .unwrap();
        assert!(is_version_one(&v1));
        let v2: Table = toml::from_str(&v1_to_v2(Path::new("spin.toml"), v1).unwrap()).unwrap();
        assert_eq!(v2["spin_manifest_version"].as_integer(), Some(2));
        assert_eq!(v2["application"]["trigger"]["http"]["base"].as_str(), Some("/"));
        let trigger = &v2["trigger"]["http"][0];
        assert_eq!((trigger["id"].as_str(), trigger["component"].as_str(), trigger["route"].as_str()), (Some("trigger-hello-world"), Some("hello-world"), Some("/hello/...")));
        let component = &v2["component"]["hello-world"];
        assert_eq!(component["variables"]["message"].as_str(), Some("{{ greeting }}"));
        let hosts: Vec<&str> = component["allowed_outbound_hosts"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(
            hosts,
            ["redis://*:*", "mysql://*:*", "postgres://*:*", "http://example.com", "https://example.com", "http://api.example.com:8443", "https://api.example.com:8443", "http://self"]
        );
        assert!(outbound_hosts(&["example.com/path".into()], false).unwrap_err().contains("contains a path"));
        assert_eq!(outbound_hosts(&["insecure:allow-all".into()], false).unwrap(), ["http://*:*", "https://*:*", "http://self"]);
    }
}
