//! `tessera inspect`: what each component of an app (or a single component file, or a
//! registry artifact) imports and exports, what the manifest grants it, the grants it
//! never uses (over-grants), the imports no grant lets it use, its size, digest and
//! signature status.

use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tessera_app::SourceFetcher as _;
use tessera_capabilities::{Grant, grant_for_import};
use crate::sign::{Target, target};
use tessera_manifest::{Component, FileMount, Manifest};
use tessera_signing::{PublicKey, component as signatures};

/// Arguments of `tessera inspect`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera inspect\n  tessera inspect -f app.wasm --json\n  tessera inspect -f ghcr.io/me/app:v1 --key release.pub")]
pub struct InspectArgs {
    /// An app (spin.toml or its directory), a component file (.wasm) or a registry reference.
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR_OR_REF", default_value = ".")]
    from: String,
    /// Print JSON for tools instead of text.
    #[arg(long)]
    json: bool,
    /// Also check signatures against this public key (repeatable).
    #[arg(long = "key", value_name = "FILE")]
    keys: Vec<PathBuf>,
    #[command(flatten)]
    registry: crate::registry::Connection,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let keys = args.keys.iter().map(|k| PublicKey::from_file(k)).collect::<Result<Vec<_>>>()?;
    let report = match target(&args.from)? {
        Target::Component(path) => json!({ "components": [inspect_component(None, &path, &keys)?] }),
        Target::App(manifest) => inspect_app(&manifest, &args, &keys)?,
        Target::Artifact(reference) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let pulled = runtime.block_on(crate::registry::pull(&reference, &args.registry))?;
            inspect_app(&pulled.manifest, &args, &keys)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn inspect_app(manifest_path: &Path, args: &InspectArgs, keys: &[PublicKey]) -> Result<Value> {
    let manifest = Manifest::from_file(manifest_path)?;
    let fetcher = tessera_registry::SourceCache::new(args.registry.options());
    let mut components = Vec::new();
    for (id, c) in &manifest.components {
        let mut report = inspect_component(Some(c), &fetcher.fetch(id, &c.source)?, keys)?;
        if !c.dependencies.is_empty() || !c.middleware.is_empty() {
            let options = tessera_app::LoadOptions { fetcher: Some(std::sync::Arc::new(tessera_registry::SourceCache::new(args.registry.options()))), ..Default::default() };
            let composed = tessera_app::compose_component(&manifest, id, &options)?;
            report["dependencies"] = dependency_graph(c, &composed);
        }
        components.push(report);
    }
    Ok(json!({ "app": manifest.application.name, "manifest": manifest_path, "components": components }))
}

fn inspect_component(component: Option<&Component>, source: &Path, keys: &[PublicKey]) -> Result<Value> {
    let bytes = std::fs::read(source).with_context(|| format!("cannot read {}; build it first (`tessera build`)", source.display()))?;
    // A WASI preview 1 module is shown as the component it is made at load.
    let (form, (imports, exports)) = if tessera_engine::is_core_module(&bytes) {
        let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match tessera_engine::module_to_component(&name, &bytes) {
            Ok(adapted) => ("WASI preview 1 module, made a component at load".to_string(), tessera_engine::world_names(&adapted)),
            Err(e) => (format!("{e:#}"), (Vec::new(), Vec::new())),
        }
    } else {
        ("component".to_string(), tessera_engine::world_names(&bytes))
    };

    let mut granted: Vec<(Grant, Vec<String>)> = Vec::new();
    if let Some(c) = component {
        let hosts = c.allowed_outbound_hosts.iter().map(|(t, _)| t.to_string()).collect();
        let labels = |l: &[(String, tessera_manifest::Location)]| l.iter().map(|(s, _)| s.clone()).collect();
        let files = c
            .files
            .iter()
            .map(|f| match f {
                FileMount::Glob { pattern, .. } => pattern.clone(),
                FileMount::Map { source, destination, .. } => format!("{} -> {destination}", source.display()),
            })
            .collect();
        granted = vec![
            (Grant::AllowedOutboundHosts, hosts),
            (Grant::KeyValueStores, labels(&c.key_value_stores)),
            (Grant::SqliteDatabases, labels(&c.sqlite_databases)),
            (Grant::Files, files),
            (Grant::Variables, c.variables.keys().cloned().collect()),
            (Grant::AllowedPublishSubjects, labels(&c.allowed_publish_subjects)),
            (Grant::BlobContainers, labels(&c.blob_containers)),
        ];
    }
    let used: BTreeSet<Grant> = imports.iter().filter_map(|i| grant_for_import(i)).collect();
    let has = |g: Grant| granted.iter().any(|(k, v)| *k == g && !v.is_empty());
    let over_grants: Vec<Value> = granted
        .iter()
        .filter(|(g, v)| !v.is_empty() && !used.contains(g))
        .map(|(g, _)| json!({ "grant": g.key(), "reason": "no imported interface uses it" }))
        .collect();
    let unusable: Vec<Value> = imports
        .iter()
        .filter_map(|i| grant_for_import(i).filter(|g| !has(*g)).map(|g| json!({ "import": i, "needs": g.key() })))
        .collect();

    let detached_path = tessera_app::signature_path(source);
    let detached = std::fs::read_to_string(&detached_path).ok();
    let mut signature = match (signatures::embedded_signers(&bytes), &detached) {
        (Some(ids), _) => json!({ "kind": "embedded", "format": "wasmsign2", "key_ids": ids }),
        (None, Some(_)) => json!({ "kind": "detached", "file": detached_path }),
        (None, None) => json!({ "kind": "none" }),
    };
    if !keys.is_empty() {
        signature["verified"] = match signatures::check(&bytes, detached.as_deref(), keys) {
            Ok(t) => json!({ "trusted": true, "key": t.key }),
            Err(reason) => json!({ "trusted": false, "reason": reason.to_string() }),
        };
    }
    let grants: serde_json::Map<String, Value> = granted.iter().map(|(g, v)| (g.key().to_string(), json!(v))).collect();
    Ok(json!({
        "id": component.map(|c| c.id.clone()),
        "source": source,
        "form": form,
        "size": bytes.len(),
        "digest": tessera_registry::digest_of(&bytes),
        "signature": signature,
        "exports": exports,
        "imports": imports,
        "grants": grants,
        "over_grants": over_grants,
        "unusable_imports": unusable,
    }))
}

/// Who satisfies which import, and what each dependency inherits or is refused.
fn dependency_graph(component: &Component, composed: &tessera_compose::Composed) -> Value {
    use tessera_manifest::dependencies::{DependencySource, Inherit};
    let dependencies = component.dependencies.iter().map(|d| (d.name.to_string(), d));
    let middleware = component.middleware.iter().enumerate().map(|(i, d)| (format!("middleware[{i}]"), d));
    let graph: Vec<Value> = dependencies
        .chain(middleware)
        .map(|(key, d)| {
            let source = match &d.source {
                DependencySource::Path(p) => format!("path {}", p.display()),
                DependencySource::Component(id) => format!("component {id}"),
                DependencySource::Url { url, .. } => format!("url {url}"),
                DependencySource::Registry { version, package, .. } => format!("registry {} {version}", package.as_deref().unwrap_or(&key)),
            };
            let inherits = match &d.inherit {
                Inherit::Nothing => json!([]),
                Inherit::Everything => json!(["everything"]),
                Inherit::Keys(keys) => json!(keys),
            };
            let satisfies: Vec<&str> = composed.satisfied.iter().filter(|(_, k)| *k == key).map(|(i, _)| i.as_str()).collect();
            let denied: Vec<Value> = composed
                .denied
                .iter()
                .filter(|x| x.dependency == key)
                .map(|x| json!({ "interface": x.interface, "allowed_by": x.inherit_key }))
                .collect();
            json!({ "key": key, "source": source, "export": d.export, "satisfies": satisfies, "inherits": inherits, "denied": denied })
        })
        .collect();
    json!(graph)
}

fn print_text(report: &Value) {
    if let Some(app) = report["app"].as_str() {
        println!("App `{app}` ({})", report["manifest"].as_str().unwrap_or(""));
    }
    for c in report["components"].as_array().into_iter().flatten() {
        let list = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
        println!();
        match c["id"].as_str() {
            Some(id) => println!("component `{id}`"),
            None => println!("component {}", c["source"].as_str().unwrap_or("")),
        }
        println!("  source:    {}", c["source"].as_str().unwrap_or(""));
        if c["form"].as_str() != Some("component") {
            println!("  form:      {}", c["form"].as_str().unwrap_or(""));
        }
        println!("  size:      {} bytes ({:.1} MB)", c["size"], c["size"].as_f64().unwrap_or(0.0) / 1e6);
        println!("  digest:    {}", c["digest"].as_str().unwrap_or(""));
        let sig = &c["signature"];
        let mut status = match sig["kind"].as_str() {
            Some("embedded") => format!("embedded (wasmsign2, key id {})", list(&sig["key_ids"])),
            Some("detached") => format!("detached ({})", sig["file"].as_str().unwrap_or("")),
            _ => "unsigned".to_string(),
        };
        if let Some(v) = sig.get("verified") {
            status += &match v["trusted"].as_bool() {
                Some(true) => format!("; verified: trusted key {}", v["key"].as_str().unwrap_or("")),
                _ => format!("; NOT trusted: {}", v["reason"].as_str().unwrap_or("")),
            };
        }
        println!("  signature: {status}");
        println!("  exports:");
        for e in c["exports"].as_array().into_iter().flatten() {
            println!("    {}", e.as_str().unwrap_or(""));
        }
        if let Some(deps) = c["dependencies"].as_array() {
            println!("  dependencies:");
            for d in deps {
                let satisfies: Vec<&str> = d["satisfies"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                println!("    {} ({}) satisfies {}", d["key"].as_str().unwrap_or(""), d["source"].as_str().unwrap_or(""), satisfies.join(", "));
                let inherits: Vec<&str> = d["inherits"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                println!("      inherits: {}", if inherits.is_empty() { "nothing".to_string() } else { inherits.join(", ") });
                for x in d["denied"].as_array().into_iter().flatten() {
                    println!("      denied: {} (inherit_configuration = [\"{}\"] allows it)", x["interface"].as_str().unwrap_or(""), x["allowed_by"].as_str().unwrap_or(""));
                }
            }
        }
        println!("  imports:");
        for i in c["imports"].as_array().into_iter().flatten() {
            println!("    {}", i.as_str().unwrap_or(""));
        }
        if let Some(grants) = c["grants"].as_object() {
            println!("  grants:");
            for (key, values) in grants {
                let shown = list(values);
                println!("    {key}: {}", if shown.is_empty() { "(none)".to_string() } else { shown });
            }
        }
        for o in c["over_grants"].as_array().into_iter().flatten() {
            println!("  over-grant: {} is granted but {}", o["grant"].as_str().unwrap_or(""), o["reason"].as_str().unwrap_or(""));
        }
        for u in c["unusable_imports"].as_array().into_iter().flatten() {
            println!("  unusable import: {} (nothing in {} is granted)", u["import"].as_str().unwrap_or(""), u["needs"].as_str().unwrap_or(""));
        }
    }
}
