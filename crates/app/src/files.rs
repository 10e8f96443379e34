//! `files` and `exclude_files`: what a component may read, mounted read-only.
//!
//! Directory mappings (`{ source = "dir", destination = "/x" }`) are preopened directly.
//! Globs and single-file mappings are copied into a private staging directory mounted at
//! `/`, as Spin does, so the guest sees only the files it was given. Symlinks that lead
//! outside the app directory are refused.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use crate::located;
use tessera_manifest::{Component, FileMount, Manifest};

/// A host directory visible to the guest at `guest_path`, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory on the host.
    pub host_path: PathBuf,
    /// Where the guest sees it.
    pub guest_path: String,
}

/// How `files` are mounted, as `spin up` chooses it.
#[derive(Debug, Clone, Default)]
pub struct FilesMounts {
    /// Where copies of globbed and single files are staged (`--temp`); default: the
    /// system's temporary directory.
    pub staging_dir: Option<PathBuf>,
    /// Only directory mappings, each mounted from its source, no copies
    /// (`--direct-mounts`): globs, single files and `exclude_files` are refused.
    pub direct: bool,
}

/// The files one component is given, as directories mounted read-only; files picked by
/// globs are copied into a staging directory that lives as long as this value.
pub struct ComponentFiles {
    /// Host directories and where the guest sees them.
    pub mounts: Vec<Mount>,
    _staging: Option<tempfile::TempDir>,
}

impl ComponentFiles {
    /// Resolves `component`'s `files` and `exclude_files` against the app directory.
    pub fn resolve(manifest: &Manifest, component: &Component) -> Result<Self> {
        let mut staging = None;
        let mounts = mounts(manifest, component, &mut staging, &FilesMounts::default())?;
        Ok(Self { mounts, _staging: staging })
    }
}

pub(crate) fn mounts(
    manifest: &Manifest,
    component: &Component,
    staging: &mut Option<tempfile::TempDir>,
    how: &FilesMounts,
) -> Result<Vec<Mount>> {
    let app_dir = manifest
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", manifest.dir.display()))?;
    let excluded = component
        .exclude_files
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("invalid exclude_files pattern `{p}`")))
        .collect::<Result<Vec<_>>>()?;
    let is_excluded = |rel: &Path| excluded.iter().any(|p| p.matches_path(rel));

    let mut result = Vec::new();
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new(); // (host file, guest path relative to /)
    if how.direct && !component.exclude_files.is_empty() && !component.files.is_empty() {
        bail!("component `{}`: exclude_files cannot be used with --direct-mounts (nothing is copied, so nothing can be left out)\n  hint: drop --direct-mounts, or remove [component.{}] exclude_files in {}", component.id, component.id, manifest.path.display());
    }
    for mount in &component.files {
        match mount {
            FileMount::Glob { pattern, location } if how.direct => {
                return Err(located(manifest, *location, format!("files pattern `{pattern}`: only directory mounts work with --direct-mounts"), "map a directory, e.g. { source = \"static\", destination = \"/static\" }, or drop --direct-mounts"));
            }
            FileMount::Glob { pattern, location } => {
                if Path::new(pattern).is_absolute() || pattern.split('/').any(|s| s == "..") {
                    return Err(located(manifest, *location, format!("files pattern `{pattern}` leaves the app directory"), "use a pattern relative to the manifest's directory"));
                }
                let full = app_dir.join(pattern);
                let entries = glob::glob(&full.to_string_lossy()).map_err(|e| {
                    located(manifest, *location, format!("invalid files pattern `{pattern}`: {e}"), "use a glob such as `static/**/*`")
                })?;
                for entry in entries {
                    let path = entry?;
                    let rel = path.strip_prefix(&app_dir).unwrap_or(&path).to_path_buf();
                    if is_excluded(&rel) || !inside(&app_dir, &path)? || !path.is_file() {
                        continue;
                    }
                    staged.push((path, rel));
                }
            }
            FileMount::Map { source, destination, location } => {
                let host = app_dir.join(source);
                if !host.exists() {
                    return Err(located(manifest, *location, format!("files source `{}` does not exist", source.display()), "fix `source` (it is relative to the manifest's directory)"));
                }
                if !inside(&app_dir, &host)? {
                    return Err(located(manifest, *location, format!("files source `{}` leaves the app directory", source.display()), "keep mounted files inside the app directory"));
                }
                if host.is_dir() {
                    if component.exclude_files.is_empty() {
                        result.push(Mount { host_path: host.canonicalize()?, guest_path: destination.clone() });
                    } else {
                        // Exclusions need a filtered copy.
                        for entry in walk(&host)? {
                            let rel_in_src = entry.strip_prefix(&host).unwrap_or(&entry);
                            let rel_app = entry.strip_prefix(&app_dir).unwrap_or(&entry);
                            if is_excluded(rel_app) || !inside(&app_dir, &entry)? {
                                continue;
                            }
                            staged.push((entry.clone(), Path::new(destination.trim_start_matches('/')).join(rel_in_src)));
                        }
                    }
                } else if how.direct {
                    return Err(located(manifest, *location, format!("files source `{}` is a file: only directory mounts work with --direct-mounts", source.display()), "map the directory that holds it, or drop --direct-mounts"));
                } else {
                    staged.push((host, PathBuf::from(destination.trim_start_matches('/'))));
                }
            }
        }
    }
    if !staged.is_empty() {
        let root = match staging {
            Some(dir) => dir.path().to_path_buf(),
            None => {
                let builder = tempfile::Builder::new().prefix("tessera-files-").clone();
                let dir = match &how.staging_dir {
                    Some(parent) => builder.tempdir_in(parent).with_context(|| format!("--temp: cannot stage files in {}", parent.display()))?,
                    None => builder.tempdir()?,
                };
                staging.insert(dir).path().to_path_buf()
            }
        };
        let root = root.join(&component.id);
        for (host, rel) in staged {
            let dest = root.join(&rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&host, &dest).with_context(|| format!("cannot stage {}", host.display()))?;
        }
        std::fs::create_dir_all(&root)?;
        result.push(Mount { host_path: root, guest_path: "/".into() });
    }
    Ok(result)
}

/// Whether `path`, with symlinks resolved, is inside `dir`.
fn inside(dir: &Path, path: &Path) -> Result<bool> {
    Ok(path.canonicalize()?.starts_with(dir))
}

/// Every regular file under `dir`, at any depth (at most 100,000).
pub fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    if out.len() > 100_000 {
        bail!("{} holds more than 100,000 files", dir.display());
    }
    Ok(out)
}
