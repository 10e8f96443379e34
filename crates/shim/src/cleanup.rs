//! containerd's `delete` action, run when a shim died without cleaning up (SIGKILL, the
//! OOM killer): the shim library answers it without touching the container, which left
//! the container's process running (still serving on its port) and its state under
//! `/run/containerd/tessera/<namespace>/<id>`. This kills what is left of the container
//! and removes its state, as runc's shim does with `runc delete --force`.
//!
//! Nothing is written to stdout here: containerd reads the delete response from it.

use std::path::{Path, PathBuf};

/// Where the shim library keeps container state unless the bundle's `options.json` says.
const DEFAULT_ROOT: &str = "/run/containerd/tessera";

/// The `delete` action's arguments: `-namespace NS -id ID [-bundle DIR] ... delete`.
#[derive(Debug, PartialEq, Eq)]
struct DeleteRequest {
    namespace: String,
    id: String,
    bundle: PathBuf,
}

impl DeleteRequest {
    /// The request, when `args` (without the program name) ask for `delete`.
    fn parse(args: &[String], cwd: &Path) -> Option<Self> {
        if args.last().map(String::as_str) != Some("delete") {
            return None;
        }
        // Go's flag syntax: `-name value` or `-name=value`, one or two dashes.
        let flag = |name: &str| {
            args.iter().enumerate().find_map(|(i, arg)| {
                let bare = arg.trim_start_matches('-');
                if !arg.starts_with('-') {
                    return None;
                }
                match bare.split_once('=') {
                    Some((n, v)) if n == name => Some(v.to_string()),
                    None if bare == name => args.get(i + 1).cloned(),
                    _ => None,
                }
            })
        };
        Some(Self {
            namespace: flag("namespace")?,
            id: flag("id")?,
            bundle: flag("bundle").map(PathBuf::from).unwrap_or_else(|| cwd.to_path_buf()),
        })
    }

    /// The container's state directory, found as the shim library finds it.
    fn state_dir(&self) -> PathBuf {
        let configured = std::fs::read(self.bundle.join("options.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|options| options.get("root").and_then(|r| r.as_str()).map(PathBuf::from));
        configured.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)).join(&self.namespace).join(&self.id)
    }
}

/// When this process is containerd's `delete` action, kills and removes what a dead shim
/// left of the container; failures go to stderr (containerd's log).
pub fn after_a_dead_shim() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cwd = std::env::current_dir().unwrap_or_default();
    let Some(request) = DeleteRequest::parse(&args, &cwd) else { return };
    let dir = request.state_dir();
    if !dir.join("state.json").is_file() {
        return;
    }
    let removed = libcontainer::container::Container::load(dir.clone()).and_then(|mut container| container.delete(true));
    match removed {
        Ok(()) => eprintln!("tessera: removed container {} left by a shim that died ({})", request.id, dir.display()),
        Err(e) => eprintln!("tessera: cannot remove container {} left at {}: {e}", request.id, dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::DeleteRequest;
    use std::path::{Path, PathBuf};

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_delete_action_is_read_as_containerd_writes_it() {
        let cwd = Path::new("/run/containerd/io.containerd.runtime.v2.task/default/app");
        let request = DeleteRequest::parse(&args("-namespace default -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id app delete"), cwd).unwrap();
        assert_eq!(request, DeleteRequest { namespace: "default".into(), id: "app".into(), bundle: cwd.to_path_buf() });
        assert_eq!(request.state_dir(), PathBuf::from("/run/containerd/tessera/default/app"));
        let request = DeleteRequest::parse(&args("--namespace=k8s.io --id=pod-1 -bundle /b delete"), cwd).unwrap();
        assert_eq!((request.namespace.as_str(), request.id.as_str(), request.bundle.as_path()), ("k8s.io", "pod-1", Path::new("/b")));
        assert_eq!(DeleteRequest::parse(&args("-namespace default -id app start"), cwd), None);
        assert_eq!(DeleteRequest::parse(&args("-id app delete"), cwd), None);
    }
}
