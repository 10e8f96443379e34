//! App archives for the admin API: a tar file (gzip-compressed or not) of an app's
//! directory, unpacked where nothing in it can reach outside: only files and directories,
//! relative paths without `..`, and limits on entries and unpacked bytes counted as they
//! are written (a header's size is not trusted).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// What an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Files and directories in all.
    pub max_entries: usize,
    /// Bytes of all files together, once unpacked.
    pub max_unpacked_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self { max_entries: 10_000, max_unpacked_bytes: 512 << 20 }
    }
}

/// Why an archive was refused; nothing it held is left on disk.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not a tar file, or a damaged one.
    #[error("the body is not a readable tar or tar.gz archive: {0}")]
    Unreadable(String),
    /// An entry that is not a plain file or directory.
    #[error("entry `{path}` is a {kind}: an app archive may hold only files and directories")]
    NotAFile {
        /// The entry's path in the archive.
        path: String,
        /// What it is.
        kind: String,
    },
    /// An absolute path or one that climbs out with `..`.
    #[error("entry `{0}` points outside the archive (an absolute path or `..`)")]
    Escapes(String),
    /// Over [`ArchiveLimits::max_entries`].
    #[error("the archive holds more than {0} entries")]
    TooManyEntries(usize),
    /// Over [`ArchiveLimits::max_unpacked_bytes`].
    #[error("the archive unpacks to more than {0} bytes")]
    TooLarge(u64),
    /// No `spin.toml` at its root, nor in its one top-level directory.
    #[error("the archive has no spin.toml at its root (nor in a single top-level directory)")]
    NoManifest,
    /// Writing failed.
    #[error("cannot unpack the archive: {0}")]
    Io(#[from] std::io::Error),
}

/// Unpacks `archive` (tar, or tar.gz by its magic bytes) into the empty directory `into`
/// and returns the app's directory in it (`into`, or its one top-level directory when
/// the archive was made of a folder). On an error, `into` may hold part of the archive:
/// the caller removes it.
pub fn unpack(archive: &[u8], into: &Path, limits: ArchiveLimits) -> Result<PathBuf, ArchiveError> {
    let reader: Box<dyn Read + '_> = if archive.starts_with(&[0x1f, 0x8b]) { Box::new(flate2::read::GzDecoder::new(archive)) } else { Box::new(archive) };
    let mut tar = tar::Archive::new(reader);
    let unreadable = |e: std::io::Error| ArchiveError::Unreadable(e.to_string());
    let (mut entries, mut written) = (0usize, 0u64);
    for entry in tar.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(ArchiveError::TooManyEntries(limits.max_entries));
        }
        let raw = entry.path().map_err(unreadable)?.into_owned();
        let shown = raw.display().to_string();
        let relative = contained(&raw).ok_or_else(|| ArchiveError::Escapes(shown.clone()))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(into.join(&relative))?;
            continue;
        }
        if !kind.is_file() {
            let kind = match kind {
                tar::EntryType::Symlink => "symbolic link",
                tar::EntryType::Link => "hard link",
                tar::EntryType::Char | tar::EntryType::Block => "device",
                tar::EntryType::Fifo => "pipe",
                _ => "special entry",
            };
            // pax and GNU long-name headers are read by the tar crate itself and never
            // reach here.
            return Err(ArchiveError::NotAFile { path: shown, kind: kind.to_string() });
        }
        let target = into.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&target).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists { ArchiveError::Unreadable(format!("entry `{shown}` appears twice")) } else { e.into() }
        })?;
        let left = limits.max_unpacked_bytes - written;
        let copied = std::io::copy(&mut (&mut entry).take(left + 1), &mut file).map_err(unreadable)?;
        written += copied;
        if copied > left {
            return Err(ArchiveError::TooLarge(limits.max_unpacked_bytes));
        }
    }
    if into.join("spin.toml").is_file() {
        return Ok(into.to_path_buf());
    }
    let top: Vec<_> = std::fs::read_dir(into)?.collect::<Result<_, _>>()?;
    match top.as_slice() {
        [only] if only.path().join("spin.toml").is_file() => Ok(only.path()),
        _ => Err(ArchiveError::NoManifest),
    }
}

/// `path` as plain names below the archive's root, or `None` when it is absolute or
/// climbs with `..`.
fn contained(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry as written: path, kind, contents.
    type Entry<'a> = (&'a str, tar::EntryType, &'a [u8]);

    fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            // Written raw: the builder's own path setters refuse `..`, a hostile archive's does not.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/passwd").unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn an_app_folder_unpacks_and_its_manifest_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = archive(&[("app/", tar::EntryType::Directory, b""), ("app/spin.toml", tar::EntryType::Regular, b"x"), ("app/a/b.wasm", tar::EntryType::Regular, b"wasm")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        let root = unpack(&gz.finish().unwrap(), dir.path(), ArchiveLimits::default()).unwrap();
        assert_eq!(root, dir.path().join("app"));
        assert_eq!(std::fs::read(root.join("a/b.wasm")).unwrap(), b"wasm");
    }

    #[test]
    fn hostile_archives_are_refused_by_name() {
        let cases: [(&[Entry<'_>], &str); 5] = [
            (&[("../evil", tar::EntryType::Regular, b"x")], "points outside"),
            (&[("/etc/evil", tar::EntryType::Regular, b"x")], "points outside"),
            (&[("link", tar::EntryType::Symlink, b"")], "symbolic link"),
            (&[("spin.toml", tar::EntryType::Regular, b"x"), ("spin.toml", tar::EntryType::Regular, b"y")], "appears twice"),
            (&[("big", tar::EntryType::Regular, &[0u8; 2048])], "more than 1024 bytes"),
        ];
        for (entries, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let limits = ArchiveLimits { max_entries: 10, max_unpacked_bytes: 1024 };
            let e = unpack(&archive(entries), &dir.path().join("in"), limits).unwrap_err().to_string();
            assert!(e.contains(expected), "{expected}: {e}");
            assert!(!dir.path().join("evil").exists() && !Path::new("/etc/evil").exists());
        }
        let many: Vec<_> = (0..11).map(|i| (format!("f{i}"), tar::EntryType::Regular, &b""[..])).collect();
        let many: Vec<_> = many.iter().map(|(p, k, d)| (p.as_str(), *k, *d)).collect();
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(&archive(&many), dir.path(), ArchiveLimits { max_entries: 10, max_unpacked_bytes: 1024 }).unwrap_err();
        assert!(matches!(e, ArchiveError::TooManyEntries(10)), "{e}");
        assert!(matches!(unpack(b"not a tar file at all", dir.path(), ArchiveLimits::default()), Err(ArchiveError::Unreadable(_) | ArchiveError::NoManifest)));
    }
}
