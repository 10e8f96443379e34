//! Composes a component with its dependencies into one component, as Spin 4.x does with
//! `[component.<id>.dependencies]`: each key satisfies the parent's imports it names (by
//! Spin's matching rule) with the dependency's export of the same name, or its `export`.
//!
//! Deny by default: a dependency's imports of a capability (environment, files, network,
//! stores, variables, models) are not merged with the parent's. Unless its
//! `inherit_configuration` names that capability's key, each such import is renamed to a
//! private import (`tessera-denied-N`) that the host links to functions refusing the call,
//! and [`Composed::denied`] says which dependency, interface and key each one stands for.
//! Imports that carry no authority (`wasi:io`, clocks, random, stdio) stay shared.
#![deny(missing_docs)]

mod seal;

pub use seal::self_contained;

use std::collections::BTreeMap;
use std::fmt;
use tessera_manifest::dependencies::{DependencyName, Inherit};
use wac_graph::types::{ItemKind, Package};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId};

/// The prefix of the private imports that stand for denied capabilities.
pub const DENIED_PREFIX: &str = "tessera-denied-";

/// One dependency, resolved to its component's bytes.
pub struct Dependency<'a> {
    /// The manifest key.
    pub name: &'a DependencyName,
    /// The component implementing it.
    pub bytes: &'a [u8],
    /// `export`: the dependency's export to use instead of the import's own name.
    pub export: Option<&'a str>,
    /// What of the parent's configuration it may use.
    pub inherit: &'a Inherit,
}

/// A dependency's capability import that the host must refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedImport {
    /// The private import name in the composed component.
    pub import: String,
    /// The interface the dependency imported.
    pub interface: String,
    /// The dependency's manifest key.
    pub dependency: String,
    /// The `inherit_configuration` key that would allow it.
    pub inherit_key: &'static str,
}

/// The composed component.
#[derive(Debug)]
pub struct Composed {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The denied capability imports, in import order.
    pub denied: Vec<DeniedImport>,
    /// Which dependency satisfies which of the parent's imports: (import, key).
    pub satisfied: Vec<(String, String)>,
}

/// Why a component and its dependencies do not compose.
#[derive(Debug)]
pub enum ComposeError {
    /// A component is not a valid component.
    Invalid {
        /// The dependency's key, or `None` for the component itself.
        dependency: Option<String>,
        /// The decoder's reason.
        reason: String,
    },
    /// A key matches none of the parent's imports.
    Unmatched {
        /// The key.
        key: String,
        /// The parent's imports.
        imports: Vec<String>,
    },
    /// An import is matched by more than one key.
    Conflict {
        /// The import.
        import: String,
        /// The keys.
        keys: Vec<String>,
    },
    /// The dependency lacks the export an import needs.
    MissingExport {
        /// The key.
        key: String,
        /// The export looked for.
        export: String,
        /// What it exports.
        exports: Vec<String>,
    },
    /// The export does not fit the import's type.
    Mismatch {
        /// The key.
        key: String,
        /// The parent's import.
        import: String,
        /// The export used.
        export: String,
        /// Why, from the type checker.
        reason: String,
    },
    /// HTTP middleware cannot wrap the handler, or a layer is not middleware.
    Middleware {
        /// `middleware[i]`, or `None` for the handler itself.
        key: Option<String>,
        /// What it imports.
        imports: Vec<String>,
        /// What it exports.
        exports: Vec<String>,
    },
    /// The composed result could not be encoded.
    Encode(String),
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid { dependency: Some(key), reason } => write!(f, "dependency `{key}` is not a usable component: {reason}"),
            Self::Invalid { dependency: None, reason } => write!(f, "the component is not a usable component: {reason}"),
            Self::Unmatched { key, imports } => {
                write!(f, "dependency `{key}` matches none of the component's imports ({})", list(imports))
            }
            Self::Conflict { import, keys } => {
                write!(f, "import `{import}` is matched by more than one dependency: {}", keys.join(", "))
            }
            Self::MissingExport { key, export, exports } => {
                write!(f, "dependency `{key}` does not export `{export}` (it exports {})", list(exports))
            }
            Self::Mismatch { key, import, export, reason } => {
                write!(f, "dependency `{key}`: its export `{export}` does not fit the component's import `{import}`: {reason}")
            }
            Self::Middleware { key: None, exports, .. } => write!(
                f,
                "middleware wraps {MIDDLEWARE_INTERFACE} handlers (WASI 0.3, as in Spin), and the component exports {}",
                list(exports)
            ),
            Self::Middleware { key: Some(key), imports, exports } => write!(
                f,
                "{key} is not HTTP middleware: it must import and export {MIDDLEWARE_INTERFACE} (it imports {}; it exports {})",
                list(imports),
                list(exports)
            ),
            Self::Encode(reason) => write!(f, "the composed component could not be encoded: {reason}"),
        }
    }
}

impl std::error::Error for ComposeError {}

fn list(items: &[String]) -> String {
    if items.is_empty() { "nothing".into() } else { items.join(", ") }
}

/// The `inherit_configuration` key whose capability interface `import` is, if any.
pub fn capability_key(import: &str) -> Option<&'static str> {
    let name = import.split('@').next().unwrap_or(import);
    let (package, _) = name.split_once('/').unwrap_or((name, ""));
    Some(match name {
        "wasi:cli/environment" => "environment",
        "wasi:filesystem/preopens" => "files",
        "wasi:http/outgoing-handler" | "wasi:http/client" => "allowed_outbound_hosts",
        "fermyon:spin/http" | "fermyon:spin/redis" | "fermyon:spin/postgres" | "fermyon:spin/mysql" | "fermyon:spin/mqtt" => {
            "allowed_outbound_hosts"
        }
        "fermyon:spin/key-value" => "key_value_stores",
        "fermyon:spin/sqlite" => "sqlite_databases",
        "fermyon:spin/variables" | "fermyon:spin/config" | "wasi:config/store" => "variables",
        "fermyon:spin/llm" => "ai_models",
        _ => match package {
            "wasi:sockets" if !name.ends_with("/network") && !name.ends_with("/instance-network") => "allowed_outbound_hosts",
            "spin:redis" | "spin:postgres" | "spin:mysql" | "spin:mqtt" => "allowed_outbound_hosts",
            "spin:key-value" | "wasi:keyvalue" => "key_value_stores",
            "spin:sqlite" => "sqlite_databases",
            "spin:variables" => "variables",
            "spin:llm" | "fermyon:llm" => "ai_models",
            _ => return None,
        },
    })
}

fn inherits(inherit: &Inherit, key: &str) -> bool {
    match inherit {
        Inherit::Nothing => false,
        Inherit::Everything => true,
        Inherit::Keys(keys) => keys.iter().any(|k| k == key),
    }
}

/// Composes `parent` (component `id`) with `dependencies`.
pub fn compose(id: &str, parent: &[u8], dependencies: &[Dependency<'_>]) -> Result<Composed, ComposeError> {
    let mut graph = CompositionGraph::new();
    let parent_package = Package::from_bytes(&format!("tessera:{id}"), None, parent.to_vec(), graph.types_mut())
        .map_err(|e| ComposeError::Invalid { dependency: None, reason: format!("{e:#}") })?;
    let parent_package = graph.register_package(parent_package).map_err(|e| ComposeError::Encode(e.to_string()))?;
    let world = graph.types()[graph[parent_package].ty()].clone();
    let imports: Vec<String> = world.imports.keys().cloned().collect();

    // Which key satisfies which import, as Spin matches them.
    let mut matched: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, dependency) in dependencies.iter().enumerate() {
        let mut any = false;
        for import in &imports {
            if dependency.name.matches_import(import) {
                matched.entry(import.as_str()).or_default().push(i);
                any = true;
            }
        }
        if !any {
            return Err(ComposeError::Unmatched { key: dependency.name.to_string(), imports });
        }
    }
    if let Some((import, keys)) = matched.iter().find(|(_, keys)| keys.len() > 1) {
        return Err(ComposeError::Conflict {
            import: import.to_string(),
            keys: keys.iter().map(|&i| dependencies[i].name.to_string()).collect(),
        });
    }

    let root = graph.instantiate(parent_package);
    let mut instances: Vec<Option<NodeId>> = vec![None; dependencies.len()];
    let mut denied = Vec::new();
    let mut satisfied = Vec::new();
    for (import, keys) in &matched {
        let i = keys[0];
        let dependency = &dependencies[i];
        let key = dependency.name.to_string();
        let instance = match instances[i] {
            Some(node) => node,
            None => {
                let node = instantiate_dependency(&mut graph, i, key.clone(), dependency, &mut denied)?;
                instances[i] = Some(node);
                node
            }
        };
        let export = dependency.export.unwrap_or(import);
        let alias = graph.alias_instance_export(instance, export).map_err(|_| {
            ComposeError::MissingExport { key: key.clone(), export: export.to_string(), exports: exports_of(&graph, instance) }
        })?;
        graph.set_instantiation_argument(root, import, alias).map_err(|e| ComposeError::Mismatch {
            key: key.clone(),
            import: import.to_string(),
            export: export.to_string(),
            reason: error_chain(&e),
        })?;
        satisfied.push((import.to_string(), key));
    }

    for name in world.exports.keys() {
        let alias = graph.alias_instance_export(root, name).map_err(|e| ComposeError::Encode(e.to_string()))?;
        graph.export(alias, name).map_err(|e| ComposeError::Encode(e.to_string()))?;
    }
    let bytes = graph.encode(EncodeOptions::default()).map_err(|e| ComposeError::Encode(error_chain(&e)))?;
    Ok(Composed { bytes, denied, satisfied })
}

/// The interface HTTP middleware imports (the next handler) and exports.
pub const MIDDLEWARE_INTERFACE: &str = "wasi:http/handler@0.3.0";

/// Wraps `handler` (component `id`, already composed with its dependencies, whose denied
/// imports are `denied`) in `middleware`, outermost first, as Spin chains it: each
/// middleware's `wasi:http/handler@0.3.0` import is the next one's export, the last one's
/// is the handler's, and the result exports the outermost's. Middleware is denied its
/// parent's capabilities like any dependency; its refusals are named `middleware[i]`.
pub fn wrap_in_middleware(id: &str, handler: &[u8], denied: Vec<DeniedImport>, middleware: &[Dependency<'_>]) -> Result<Composed, ComposeError> {
    let mut graph = CompositionGraph::new();
    let package = Package::from_bytes(&format!("tessera:{id}"), None, handler.to_vec(), graph.types_mut())
        .map_err(|e| ComposeError::Invalid { dependency: None, reason: format!("{e:#}") })?;
    let package = graph.register_package(package).map_err(|e| ComposeError::Encode(e.to_string()))?;
    let exports: Vec<String> = graph.types()[graph[package].ty()].exports.keys().cloned().collect();
    if !exports.iter().any(|e| e == MIDDLEWARE_INTERFACE) {
        return Err(ComposeError::Middleware { key: None, imports: Vec::new(), exports });
    }
    let mut denied = denied;
    let handler = graph.instantiate(package);
    let mut next = graph.alias_instance_export(handler, MIDDLEWARE_INTERFACE).map_err(|e| ComposeError::Encode(error_chain(&e)))?;
    let mut satisfied = Vec::new();
    for (i, layer) in middleware.iter().enumerate().rev() {
        let key = format!("middleware[{i}]");
        let instance = instantiate_dependency(&mut graph, i, key.clone(), layer, &mut denied)?;
        let (imports, exports) = world_of(&graph, instance);
        if !imports.iter().any(|n| n == MIDDLEWARE_INTERFACE) || !exports.iter().any(|n| n == MIDDLEWARE_INTERFACE) {
            return Err(ComposeError::Middleware { key: Some(key), imports, exports });
        }
        graph.set_instantiation_argument(instance, MIDDLEWARE_INTERFACE, next).map_err(|e| ComposeError::Mismatch {
            key: key.clone(),
            import: MIDDLEWARE_INTERFACE.into(),
            export: format!("the {} of the next layer", MIDDLEWARE_INTERFACE),
            reason: error_chain(&e),
        })?;
        next = graph.alias_instance_export(instance, MIDDLEWARE_INTERFACE).map_err(|_| ComposeError::MissingExport {
            key: key.clone(),
            export: MIDDLEWARE_INTERFACE.into(),
            exports: exports_of(&graph, instance),
        })?;
        satisfied.push((format!("{MIDDLEWARE_INTERFACE} (wraps {})", if i + 1 == middleware.len() { format!("component {id}") } else { format!("middleware[{}]", i + 1) }), key));
    }
    satisfied.reverse();
    graph.export(next, MIDDLEWARE_INTERFACE).map_err(|e| ComposeError::Encode(error_chain(&e)))?;
    let bytes = graph.encode(EncodeOptions::default()).map_err(|e| ComposeError::Encode(error_chain(&e)))?;
    Ok(Composed { bytes, denied, satisfied })
}

/// Instantiates dependency `index`, giving each capability import it may not inherit a
/// private import of its own.
fn instantiate_dependency(
    graph: &mut CompositionGraph,
    index: usize,
    key: String,
    dependency: &Dependency<'_>,
    denied: &mut Vec<DeniedImport>,
) -> Result<NodeId, ComposeError> {
    let package = Package::from_bytes(&format!("tessera:dependency-{index}"), None, dependency.bytes.to_vec(), graph.types_mut())
        .map_err(|e| ComposeError::Invalid { dependency: Some(key.clone()), reason: format!("{e:#}") })?;
    let package = graph.register_package(package).map_err(|e| ComposeError::Encode(e.to_string()))?;
    let imports: Vec<(String, ItemKind)> = graph.types()[graph[package].ty()].imports.iter().map(|(n, k)| (n.clone(), *k)).collect();
    let instance = graph.instantiate(package);
    // Interfaces whose resources other imports use (`wasi:sockets/tcp`'s socket, used by
    // `tcp-create-socket`) stay shared: a private copy would give those resources a second
    // identity (spin#2969's "resource types are not the same"). Denying the interfaces
    // that create them is enough.
    let providers: std::collections::HashSet<_> = imports
        .iter()
        .filter_map(|(_, kind)| match kind {
            ItemKind::Instance(i) => Some(graph.types()[*i].uses.values().map(|u| u.interface).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    for (name, kind) in imports {
        let Some(inherit_key) = capability_key(&name) else { continue };
        if inherits(dependency.inherit, inherit_key) || matches!(kind, ItemKind::Instance(i) if providers.contains(&i)) {
            continue;
        }
        let private = format!("{DENIED_PREFIX}{}", denied.len() + 1);
        // An instance type without the interface's name: wac merges imports of the same
        // interface (across compatible versions) into one, which would hand the
        // dependency the parent's own import again.
        let kind = match kind {
            ItemKind::Instance(interface) => {
                let mut anonymous = graph.types()[interface].clone();
                anonymous.id = None;
                ItemKind::Instance(graph.types_mut().add_interface(anonymous))
            }
            other => other,
        };
        let node = graph.import(&private, kind).map_err(|e| ComposeError::Encode(error_chain(&e)))?;
        graph.set_instantiation_argument(instance, &name, node).map_err(|e| ComposeError::Encode(error_chain(&e)))?;
        denied.push(DeniedImport { import: private, interface: name, dependency: key.clone(), inherit_key });
    }
    Ok(instance)
}

/// The imports and exports of an instance's package.
fn world_of(graph: &CompositionGraph, instance: NodeId) -> (Vec<String>, Vec<String>) {
    match graph[instance].package() {
        Some(package) => {
            let world = &graph.types()[graph[package].ty()];
            (world.imports.keys().cloned().collect(), world.exports.keys().cloned().collect())
        }
        None => (Vec::new(), Vec::new()),
    }
}

fn exports_of(graph: &CompositionGraph, instance: NodeId) -> Vec<String> {
    match graph[instance].package() {
        Some(package) => graph.types()[graph[package].ty()].exports.keys().cloned().collect(),
        None => Vec::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_interfaces_map_to_spin_s_inherit_keys() {
        assert_eq!(capability_key("wasi:cli/environment@0.2.6"), Some("environment"));
        assert_eq!(capability_key("wasi:filesystem/preopens@0.2.0"), Some("files"));
        assert_eq!(capability_key("wasi:sockets/tcp@0.2.0"), Some("allowed_outbound_hosts"));
        assert_eq!(capability_key("wasi:sockets/network@0.2.0"), None, "a network handle grants nothing by itself");
        assert_eq!(capability_key("fermyon:spin/key-value@2.0.0"), Some("key_value_stores"));
        assert_eq!(capability_key("spin:sqlite/sqlite@3.1.0"), Some("sqlite_databases"));
        assert_eq!(capability_key("wasi:io/streams@0.2.6"), None);
        assert_eq!(capability_key("wasi:cli/stdout@0.2.6"), None);
    }

    fn guest(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/guests/target/wasm32-wasip2/release").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("run scripts/build-guests.sh first: {}: {e}", path.display()))
    }

    fn imports_of(bytes: &[u8]) -> Vec<String> {
        let mut graph = CompositionGraph::new();
        let package = Package::from_bytes("t:t", None, bytes.to_vec(), graph.types_mut()).unwrap();
        graph.types()[package.ty()].imports.keys().cloned().collect()
    }

    #[test]
    fn a_dependency_satisfies_the_import_and_its_capabilities_stay_apart() {
        let (user, calc) = (guest("calc_user_guest.wasm"), guest("calc_guest.wasm"));
        let name = DependencyName::parse("tessera:calc").unwrap();
        let denied = compose("api", &user, &[Dependency { name: &name, bytes: &calc, export: None, inherit: &Inherit::Nothing }]).unwrap();
        let imports = imports_of(&denied.bytes);
        assert!(!imports.iter().any(|i| i.starts_with("tessera:calc/")), "the import is satisfied: {imports:?}");
        assert_eq!(denied.satisfied, vec![("tessera:calc/calculator@0.1.0".to_string(), "tessera:calc".to_string())]);
        let deny = |n: usize, interface: &str, inherit_key| DeniedImport { import: format!("tessera-denied-{n}"), interface: interface.into(), dependency: "tessera:calc".into(), inherit_key };
        assert_eq!(denied.denied, vec![deny(1, "fermyon:spin/key-value@2.0.0", "key_value_stores"), deny(2, "wasi:cli/environment@0.2.12", "environment")]);
        assert!(imports.contains(&"tessera-denied-2".to_string()) && imports.contains(&"wasi:cli/environment@0.2.12".to_string()), "{imports:?}");
        assert!(!imports.contains(&"fermyon:spin/key-value@2.0.0".to_string()), "the parent imports no store: {imports:?}");

        let inherited = compose("api", &user, &[Dependency { name: &name, bytes: &calc, export: None, inherit: &Inherit::Everything }]).unwrap();
        assert!(inherited.denied.is_empty());
        let imports = imports_of(&inherited.bytes);
        assert!(!imports.iter().any(|i| i.starts_with(DENIED_PREFIX)) && imports.contains(&"fermyon:spin/key-value@2.0.0".to_string()), "{imports:?}");

        // For other hosts the denied imports are satisfied inside; the parent's stay.
        let sealed = imports_of(&self_contained(&denied).unwrap());
        assert!(!sealed.iter().any(|i| i.starts_with(DENIED_PREFIX) || i.starts_with("fermyon:spin/key-value")), "{sealed:?}");
        assert!(sealed.contains(&"wasi:cli/environment@0.2.12".to_string()), "{sealed:?}");
        assert_eq!(self_contained(&inherited).unwrap(), inherited.bytes, "nothing denied, nothing to add");
    }

    #[test]
    fn keys_exports_and_types_that_do_not_fit_are_named() {
        let (user, calc) = (guest("calc_user_guest.wasm"), guest("calc_guest.wasm"));
        let compose_with = |key: &str, export: Option<&str>, bytes: &[u8]| {
            let name = DependencyName::parse(key).unwrap();
            compose("api", &user, &[Dependency { name: &name, bytes, export, inherit: &Inherit::Nothing }]).unwrap_err().to_string()
        };
        let e = compose_with("tessera:calculus", None, &calc);
        assert!(e.contains("dependency `tessera:calculus` matches none of the component's imports") && e.contains("tessera:calc/calculator@0.1.0"), "{e}");
        let e = compose_with("tessera:calc/calculator", Some("tessera:calc/abacus@0.1.0"), &calc);
        assert!(e.contains("does not export `tessera:calc/abacus@0.1.0`") && e.contains("it exports tessera:calc/calculator@0.1.0"), "{e}");
        // An HTTP component exports an incoming handler, not a calculator.
        let e = compose_with("tessera:calc/calculator", Some("wasi:http/incoming-handler@0.2.12"), &user);
        assert!(e.contains("its export `wasi:http/incoming-handler@0.2.12` does not fit the component's import `tessera:calc/calculator@0.1.0`"), "{e}");
        let e = compose_with("tessera:calc", None, b"not wasm");
        assert!(e.contains("dependency `tessera:calc` is not a usable component"), "{e}");

        let (a, b) = (DependencyName::parse("tessera:calc").unwrap(), DependencyName::parse("tessera:calc/calculator").unwrap());
        let both = [
            Dependency { name: &a, bytes: &calc, export: None, inherit: &Inherit::Nothing },
            Dependency { name: &b, bytes: &calc, export: None, inherit: &Inherit::Nothing },
        ];
        let e = compose("api", &user, &both).unwrap_err().to_string();
        assert!(e.contains("import `tessera:calc/calculator@0.1.0` is matched by more than one dependency: tessera:calc, tessera:calc/calculator"), "{e}");
    }
}
