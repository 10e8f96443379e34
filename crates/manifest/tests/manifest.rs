//! The manifest parser on good and bad `spin.toml` files, as a user would write them.

use std::path::Path;
use tessera_manifest::{ComponentSource, FileMount, HttpTarget, Manifest, Route};

fn parse(text: &str) -> Result<Manifest, tessera_manifest::ManifestError> {
    Manifest::parse(Path::new("/app/spin.toml"), text)
}

/// Asserts the error is at `line:col` and its text contains every `needle`.
fn assert_error(text: &str, line: usize, col: usize, needles: &[&str]) {
    let err = parse(text).expect_err("the manifest should be rejected");
    let shown = err.to_string();
    assert_eq!(err.location, Some((line, col)), "wrong place in: {shown}");
    assert!(shown.starts_with(&format!("/app/spin.toml:{line}:{col}: ")), "{shown}");
    assert!(shown.contains("hint: "), "no hint in: {shown}");
    for needle in needles {
        assert!(shown.contains(needle), "`{needle}` missing from: {shown}");
    }
}

const GOOD: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"
version = "1.2.3"
description = "A demo"
authors = ["A <a@example.com>"]

[application.trigger.http]
base = "/api/"

[variables]
api_host = { default = "example.com" }
token = { required = true, secret = true }

[[trigger.http]]
route = "/hello/..."
component = "hello"

[[trigger.http]]
route = "/users/:id"
component = { source = "users.wasm", environment = { MODE = "inline" } }

[[trigger.http]]
route = { private = true }
component = "hello"

[[trigger.http]]
route = "/health"
static_response = { status_code = 204, headers = { x-ok = "yes" } }

[component.hello]
source = "target/hello.wasm"
description = "says hello"
environment = { GREETING = "hi" }
files = ["static/**/*", { source = "assets", destination = "/assets" }]
exclude_files = ["static/secret.txt"]
key_value_stores = ["default", "cache"]
sqlite_databases = ["default"]
allowed_outbound_hosts = ["https://{{ api_host }}", "http://127.0.0.1:8080"]
variables = { token = "{{ token }}", literal = "x" }
build = { command = "cargo build", workdir = "hello", watch = ["src/**/*.rs"] }
"#;

#[test]
fn reads_every_supported_key() {
    let m = parse(GOOD).unwrap();
    assert_eq!(m.application.name, "demo");
    assert_eq!(m.application.version.as_deref(), Some("1.2.3"));
    assert_eq!(m.application.authors.len(), 1);
    assert_eq!(m.http_base, "/api");
    assert!(m.variables["token"].secret && m.variables["token"].required);
    assert_eq!(m.http_triggers.len(), 4);
    assert_eq!(m.http_triggers[2].route, Route::Private);
    let HttpTarget::Component(inline) = &m.http_triggers[1].target else { panic!() };
    assert_eq!(m.components[inline].environment["MODE"], "inline");
    let HttpTarget::Static(s) = &m.http_triggers[3].target else { panic!() };
    assert_eq!(s.status_code, 204);
    let hello = &m.components["hello"];
    assert_eq!(hello.source.file(), Some(Path::new("/app/target/hello.wasm")));
    assert_eq!(hello.files.len(), 2);
    assert!(matches!(&hello.files[1], FileMount::Map { destination, .. } if destination == "/assets"));
    assert_eq!(hello.allowed_outbound_hosts.len(), 2);
    assert_eq!(hello.build.as_ref().unwrap().commands, ["cargo build"]);
    let stores: Vec<_> = hello.key_value_stores.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(stores, ["default", "cache"]);
    let router = m.http_router();
    let hit = router.route("/api/hello/x").unwrap();
    assert_eq!(*hit.target, 0);
    assert!(router.route("/hello/x").is_none(), "the base path applies");
}

fn with_component(extra: &str) -> String {
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n{extra}"
    )
}

#[test]
fn unknown_keys_point_at_the_key() {
    assert_error(&with_component("sorce = \"x\"\n"), 9, 1, &["unknown field `sorce`"]);
    let text = "spin_manifest_version = 2\n[application]\nname = \"a\"\nnmae = \"b\"\n";
    assert_error(text, 4, 1, &["unknown field `nmae`"]);
}

#[test]
fn unsupported_spin_keys_are_named() {
    assert_error(&with_component("ai_models = [\"llama2-chat\"]\n"), 9, 13, &["component.c.ai_models", "does not support yet"]);
    let sqs = "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.sqs]]\nqueue_url = \"x\"\ncomponent = \"c\"\n";
    assert_error(sqs, 4, 1, &["trigger.sqs", "not support yet"]);
}

const TRIGGERS: &str = r#"spin_manifest_version = 2
[application]
name = "a"
[application.trigger.redis]
address = "redis://{{ host }}:6379"
[variables]
host = { default = "127.0.0.1" }
[[trigger.redis]]
channel = "{{ host }}-events"
component = "c"
[[trigger.redis]]
channel = "other"
address = "redis://10.0.0.1:6379"
component = { source = "inline.wasm" }
[[trigger.cron]]
id = "nightly"
component = "c"
cron_expression = "0 0 3 * * *"
[component.c]
source = "c.wasm"
"#;

#[test]
fn redis_and_cron_triggers_are_read_as_spin_reads_them() {
    let m = parse(TRIGGERS).unwrap();
    assert_eq!(m.redis_address.as_ref().unwrap().to_string(), "redis://{{ host }}:6379");
    assert_eq!(m.redis_triggers.len(), 2);
    assert_eq!(m.redis_triggers[0].channel.to_string(), "{{ host }}-events");
    assert_eq!((m.redis_triggers[0].component.as_str(), m.redis_triggers[0].address.is_none()), ("c", true));
    assert_eq!(m.redis_triggers[1].component, "redis-2-component", "an inline component gets the trigger's id");
    assert!(m.components.contains_key("redis-2-component"));
    assert_eq!((m.cron_triggers[0].id.as_str(), m.cron_triggers[0].cron_expression.as_str()), ("nightly", "0 0 3 * * *"));
    assert!(m.http_triggers.is_empty(), "an app needs no HTTP trigger");
}

const MQTT: &str = r#"spin_manifest_version = 2
[application]
name = "a"
[application.trigger.mqtt]
address = "mqtt://{{ host }}:1883"
[variables]
host = { default = "127.0.0.1" }
[[trigger.mqtt]]
topic = "sensors/#"
component = "c"
[[trigger.mqtt]]
id = "alerts"
topic = "alerts"
qos = "2"
component = "c"
[component.c]
source = "c.wasm"
"#;

#[test]
fn mqtt_triggers_are_read_as_the_spin_plugin_reads_them() {
    let m = parse(MQTT).unwrap();
    let broker = m.mqtt_broker.as_ref().unwrap();
    assert_eq!(broker.address.to_string(), "mqtt://{{ host }}:1883");
    assert_eq!((broker.username.to_string(), broker.password.to_string(), broker.keep_alive_interval), (String::new(), String::new(), 30));
    let t: Vec<_> = m.mqtt_triggers.iter().map(|t| (t.id.as_str(), t.topic.to_string(), t.qos)).collect();
    assert_eq!(t, [("mqtt-1", "sensors/#".to_string(), 0), ("alerts", "alerts".to_string(), 2)]);
    // Numbers are taken as well as the plugin's strings.
    let numbers = MQTT.replace("qos = \"2\"", "qos = 1").replace("1883\"\n", "1883\"\nkeep_alive_interval = 0\n");
    let m = parse(&numbers).unwrap();
    assert_eq!((m.mqtt_triggers[1].qos, m.mqtt_broker.unwrap().keep_alive_interval), (1, 0));
}

#[test]
fn bad_mqtt_triggers_are_named_at_their_place() {
    assert_error(&MQTT.replace("qos = \"2\"", "qos = \"exactly\""), 14, 7, &["not an MQTT QoS"]);
    assert_error(&MQTT.replace("qos = \"2\"", "qos = -1"), 14, 7, &["not an MQTT QoS"]);
    assert_error(&MQTT.replace("topic = \"alerts\"\n", ""), 11, 1, &["no `topic`"]);
    assert_error(&MQTT.replace("mqtt://{{ host }}", "redis://{{ host }}"), 5, 11, &["`redis://{{ host }}:1883` is not an mqtt:// URL"]);
    assert_error(&MQTT.replace("mqtt://{{ host }}:1883", "localhost:1883"), 5, 11, &["not an mqtt:// URL"]);
    assert_error(&MQTT.replace("address = ", "adress = "), 5, 1, &["unknown field `adress`"]);
    assert_error(&MQTT.replace("[application.trigger.mqtt]\naddress = \"mqtt://{{ host }}:1883\"\n", ""), 6, 1, &["[application.trigger.mqtt]"]);
}

#[test]
fn bad_redis_cron_and_command_triggers_are_named_at_their_place() {
    let no_address = TRIGGERS.replace("[application.trigger.redis]\naddress = \"redis://{{ host }}:6379\"\n", "");
    assert_error(&no_address, 6, 1, &["no `address`", "[application.trigger.redis]"]);
    assert_error(&TRIGGERS.replace("0 0 3 * * *", "0 3 * * *"), 18, 19, &["invalid cron_expression", "5 fields", "seconds first"]);
    assert_error(&TRIGGERS.replace("0 0 3 * * *", "0 0 25 * * *"), 18, 19, &["invalid cron_expression"]);
    assert_error(&TRIGGERS.replace("{{ host }}-events", "{{ nope }}"), 9, 11, &["`{{ nope }}`", "not defined"]);
    assert_error(&TRIGGERS.replace("component = \"c\"\n[[trigger.redis]]", "component = \"missing\"\n[[trigger.redis]]"), 10, 13, &["component `missing`", "not defined"]);
    assert_error(&TRIGGERS.replace("channel = \"other\"\n", ""), 11, 1, &["no `channel`"]);
    let unknown = TRIGGERS.replace("channel = \"other\"", "channel = \"other\"\nqueue = \"x\"");
    assert_error(&unknown, 13, 1, &["unknown field `queue`"]);
    let command = "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.command]]\ncomponent = \"c\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n";
    assert_error(command, 4, 1, &["command trigger", "cannot be mixed"]);
    let kafka = TRIGGERS.replace("[[trigger.cron]]", "[[trigger.kafka]]");
    assert!(parse(&kafka).unwrap_err().to_string().contains("unknown field `kafka`"));
}

#[test]
fn pinned_sources_parse_and_bad_ones_are_named() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let source = |value: &str| with_component("").replace("source = \"c.wasm\"", &format!("source = {value}"));
    let parsed = |value: &str| parse(&source(value)).unwrap().components["c"].source.clone();
    assert_eq!(
        parsed(&format!("{{ url = \"https://example.com/c.wasm\", digest = \"{digest}\" }}")),
        ComponentSource::Url { url: "https://example.com/c.wasm".into(), digest: digest.clone() }
    );
    assert_eq!(
        parsed("{ registry = \"ghcr.io\", package = \"acme:hello\", version = \"1.2.0\" }"),
        ComponentSource::Package { registry: Some("ghcr.io".into()), package: "acme:hello".into(), version: "1.2.0".into() }
    );
    assert_error(&source("{ url = \"https://x/c.wasm\", digest = \"sha256:00\" }"), 8, 10, &["digest `sha256:00`", "64 lowercase hex"]);
    assert_error(&source("{ url = \"https://x/c.wasm\" }"), 8, 10, &["needs a `digest`", "sha256sum"]);
    assert_error(&source(&format!("{{ url = \"ftp://x/c.wasm\", digest = \"{digest}\" }}")), 8, 10, &["not an http(s) URL"]);
    assert_error(&source("{ package = \"hello\", version = \"1.0.0\" }"), 8, 10, &["`hello` is not `namespace:name`"]);
    assert_error(&source("{ package = \"a:b\", version = \"^1.0\" }"), 8, 10, &["is a range", "exact version"]);
    assert_error(&source("{ package = \"a:b\" }"), 8, 10, &["needs `package` and `version`"]);
    assert_error(&source("{ package = \"a:b\", version = \"1.0.0\", tag = \"x\" }"), 8, 10, &["unknown key `tag`"]);
}

#[test]
fn inline_component_errors_point_into_the_inline_table() {
    let text = "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = { source = \"x.wasm\", enviroment = {} }\n";
    assert_error(text, 6, 34, &["inline component", "unknown field `enviroment`"]);
}

#[test]
fn wrong_types_are_reported_where_they_are() {
    assert_error(&with_component("environment = [\"A=1\"]\n"), 9, 15, &["invalid type"]);
    let text = "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = 7\ncomponent = \"c\"\n";
    assert_error(text, 5, 9, &["route must be a string"]);
}

#[test]
fn duplicate_routes_are_errors() {
    let text = "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/a\"\ncomponent = \"c\"\n[[trigger.http]]\nroute = \"/a/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n";
    assert_error(text, 8, 9, &["duplicate route `/a`", "line 5"]);
}

#[test]
fn references_must_resolve() {
    let text = with_component("").replace("component = \"c\"", "component = \"missing\"");
    assert_error(&text, 6, 13, &["component `missing`", "not defined", "[component.missing]"]);
    assert_error(&with_component("variables = { v = \"{{ nope }}\" }\n"), 9, 19, &["nope", "[variables.nope]"]);
    assert_error(&with_component("allowed_outbound_hosts = [\"example.com\"]\n"), 9, 27, &["no scheme", "https://example.com"]);
}

#[test]
fn variables_need_default_or_required() {
    let text = "spin_manifest_version = 2\n[application]\nname = \"a\"\n[variables]\nv = { secret = true }\n[[trigger.http]]\nroute = \"/\"\nstatic_response = {}\n";
    assert_error(text, 5, 1, &["neither `default` nor `required = true`"]);
    let text = text.replace("{ secret = true }", "{ default = \"x\", required = true }");
    assert_error(&text, 5, 1, &["both"]);
    // A variable given as a table of its own: the error points at its name in the header.
    let text = text.replace("[variables]\nv = { default = \"x\", required = true }", "[variables.v]\nsecret = true");
    assert_error(&text, 4, 12, &["neither `default` nor `required = true`"]);
}

#[test]
fn bad_ids_versions_and_syntax() {
    assert_error(&with_component("").replace("[component.c]", "[component.Bad_Id]").replace("\"c\"", "\"Bad_Id\""), 7, 1, &["kebab-case"]);
    assert_error("spin_manifest_version = 1\n[application]\nname = \"a\"\n", 1, 25, &["version 2"]);
    assert_error("spin_manifest_version = 2\n[application\n", 2, 13, &["TOML"]);
    let route = with_component("").replace("route = \"/\"", "route = \"/a/.../b\"");
    assert_error(&route, 5, 9, &["invalid route", "..."]);
}

#[test]
fn a_manifest_with_nothing_to_serve_is_an_error() {
    let err = parse("spin_manifest_version = 2\n[application]\nname = \"a\"\n").unwrap_err();
    assert!(err.to_string().contains("the manifest has no triggers"), "{err}");
}

const DEPENDENCIES: &str = r#"spin_manifest_version = 2
[application]
name = "composed"
[[trigger.http]]
route = "/..."
component = "api"
[component.api]
source = "api.wasm"
sqlite_databases = ["default"]
dependencies_inherit_configuration = false
[component.api.dependencies]
"my:calc" = ">=0.1.0"
"my:db/store" = { version = "^1.2", registry = "ghcr.io", package = "other:db", export = "other:db/store@1.2.0" }
"my:log/sink@0.2.0" = { path = "deps/log.wasm" }
"my:log/sink@1.0.0" = { url = "https://example.com/log.wasm", digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000" }
"users" = { component = "users", export = "my:users/users" }
[component.users]
source = "users.wasm"
"#;

#[test]
fn the_five_dependency_forms_are_read_as_spin_reads_them() {
    use tessera_manifest::dependencies::{DependencyName, DependencySource, Inherit};
    let m = parse(DEPENDENCIES).unwrap();
    let deps = &m.components["api"].dependencies;
    let by_key = |k: &str| deps.iter().find(|d| d.name.to_string() == k).unwrap_or_else(|| panic!("no {k} in {deps:?}"));
    assert_eq!(deps.len(), 5);
    assert_eq!(by_key("my:calc").source, DependencySource::Registry { version: ">=0.1.0".into(), registry: None, package: None });
    let db = by_key("my:db/store");
    assert_eq!(db.source, DependencySource::Registry { version: "^1.2".into(), registry: Some("ghcr.io".into()), package: Some("other:db".into()) });
    assert_eq!(db.export.as_deref(), Some("other:db/store@1.2.0"));
    assert_eq!(by_key("my:log/sink@0.2.0").source, DependencySource::Path("deps/log.wasm".into()));
    assert!(matches!(&by_key("my:log/sink@1.0.0").source, DependencySource::Url { url, .. } if url == "https://example.com/log.wasm"));
    let users = by_key("users");
    assert_eq!(users.name, DependencyName::Plain("users".into()));
    assert_eq!(users.source, DependencySource::Component("users".into()));
    assert_eq!((users.location.line, users.location.column), (16, 11));
    assert!(deps.iter().all(|d| d.inherit == Inherit::Nothing), "deny by default");

    let all = DEPENDENCIES.replace("dependencies_inherit_configuration = false", "dependencies_inherit_configuration = true");
    assert!(parse(&all).unwrap().components["api"].dependencies.iter().all(|d| d.inherit == Inherit::Everything));
    let some = with_component("[component.c.dependencies]\n\"my:db\" = { path = \"db.wasm\", inherit_configuration = [\"sqlite_databases\", \"variables\"] }\n");
    let m = parse(&some).unwrap();
    assert_eq!(m.components["c"].dependencies[0].inherit, Inherit::Keys(vec!["sqlite_databases".into(), "variables".into()]));
}

#[test]
fn bad_dependencies_are_named_at_their_place() {
    let dep = |line: &str| with_component(&format!("[component.c.dependencies]\n{line}\n"));
    assert_error(&dep("\"Calc\" = { path = \"x.wasm\" }"), 10, 1, &["`Calc` is neither kebab-case"]);
    assert_error(&dep("\"my:calc@1.x\" = { path = \"x.wasm\" }"), 10, 1, &["is not a version", "ranges go in the value"]);
    assert_error(&dep("\"my:calc\" = \"not a version\""), 10, 13, &["is not a version requirement"]);
    assert_error(&dep("\"calc\" = \"1.0\""), 10, 10, &["a plain name needs a `package`"]);
    assert_error(&dep("\"my:calc\" = { path = \"x.wasm\", export = \"add\" }"), 10, 13, &["a whole package cannot be satisfied from one export", "my:calc/interface"]);
    assert_error(&dep("\"my:calc/add\" = { path = \"x.wasm\", component = \"d\" }"), 10, 17, &["mixes path and component"]);
    assert_error(&dep("\"my:calc/add\" = { }"), 10, 17, &["neither `path`, `url`, `component` nor `version`"]);
    assert_error(&dep("\"my:calc/add\" = { path = \"x.wasm\", digest = \"sha256:00\" }"), 10, 17, &["unknown key `digest`", "takes path, export, inherit_configuration"]);
    assert_error(&dep("\"my:calc/add\" = { url = \"https://e.com/x.wasm\" }"), 10, 17, &["needs a `digest`"]);
    assert_error(&dep("\"my:calc/add\" = { path = \"x.wasm\", inherit_configuration = [\"network\"] }"), 10, 17, &["`\"network\"` is not a configuration key", "allowed_outbound_hosts"]);
    assert_error(&dep("\"my:calc/add\" = { component = \"c\" }"), 10, 17, &["cannot depend on itself"]);
    assert_error(&dep("\"my:calc/add\" = { component = \"nope\" }"), 10, 17, &["the app has no component `nope`", "name one of: c"]);
    // Two keys claiming the same imports.
    assert_error(&dep("\"my:calc\" = { path = \"a.wasm\" }\n\"my:calc/add\" = { path = \"b.wasm\" }"), 11, 1, &["`my:calc/add` conflicts with `my:calc` (line 10)"]);
    assert_error(&dep("\"my:calc/add@1.2.0\" = { path = \"a.wasm\" }\n\"my:calc/add@1.3.0\" = { path = \"b.wasm\" }"), 11, 1, &["conflicts with"]);
    parse(&dep("\"my:calc/add@1.2.0\" = { path = \"a.wasm\" }\n\"my:calc/add@2.0.0\" = { path = \"b.wasm\" }\n\"my:calc/mul\" = { path = \"c.wasm\" }")).expect("different major versions and interfaces are disjoint");
    // Both ways of inheriting at once.
    let both = with_component("dependencies_inherit_configuration = true\n[component.c.dependencies]\n\"my:calc/add\" = { path = \"a.wasm\", inherit_configuration = true }\n");
    assert_error(&both, 11, 1, &["sets both dependencies_inherit_configuration (line 9)", "mutually exclusive"]);
}

#[test]
fn a_component_used_as_a_dependency_has_no_grants_of_its_own() {
    let text = DEPENDENCIES.replace("[component.users]\nsource = \"users.wasm\"\n", "[component.users]\nsource = \"users.wasm\"\nkey_value_stores = [\"default\"]\nallowed_outbound_hosts = [\"https://example.com\"]\n");
    assert_error(&text, 16, 11, &["component `users` cannot be a dependency of `api` because it has allowed_outbound_hosts, key_value_stores of its own", "inherit_configuration"]);
}
