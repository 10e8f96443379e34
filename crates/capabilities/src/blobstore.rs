//! Blob storage: `wasi:blobstore@0.2.0-draft`, the version wasmCloud hosts, on an embedded
//! store of plain files: a directory per container under `<state_dir>/blobs` (or
//! `[blob_store] path` in the runtime config), a file per object.
//!
//! - A component may use the containers its `blob_containers` names (`"*"` for any); any
//!   other is the function's error and a log line naming the key to add.
//! - Writes are atomic: an object is written to a hidden temporary file in its container
//!   and renamed over the old one, so a reader sees the old bytes or the new, never part.
//! - Names cannot leave the store: container names are plain file names (letters, digits,
//!   `.`, `_`, `-`); object names may hold `/` (as in S3) but no `.` or `..` segment, and
//!   are stored percent-encoded in one flat directory.
//! - A read takes at most the instance's memory limit at once (the bytes go to the guest
//!   anyway); larger objects are read in ranges.

use crate::{Capability, Concurrency, Grant, InstanceState};
use anyhow::Result;
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tessera_app::{LoadedApp, LoadedComponent};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

/// Longest object name, in bytes before encoding.
pub const MAX_OBJECT_NAME: usize = 1024;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/blobstore",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:blobstore/container.container": super::Container,
            "wasi:blobstore/container.stream-object-names": super::ObjectNames,
            "wasi:blobstore/types.outgoing-value": super::OutgoingValue,
            "wasi:blobstore/types.incoming-value": super::IncomingValue,
        },
    });
}

use bindings::wasi::blobstore::{blobstore, container, types};

/// The blob-storage capability: where containers live.
pub struct Blobstore {
    root: PathBuf,
}

/// One component's grants.
pub struct Shared {
    component: String,
    root: PathBuf,
    containers: Vec<String>,
    max_read: u64,
}

/// An open container handed to the guest.
pub struct Container {
    name: String,
    dir: PathBuf,
}

/// Names of a container's objects, read in batches.
pub struct ObjectNames {
    names: std::vec::IntoIter<String>,
}

/// A value being written: the guest writes its body through an output stream.
pub struct OutgoingValue {
    body: MemoryOutputPipe,
    stream_taken: bool,
}

/// A value read: the object's bytes (or the range asked for).
pub struct IncomingValue {
    bytes: Bytes,
}

impl Capability for Blobstore {
    // Containers come only from `blobstore`; `types` and `container` alone reach nothing.
    const IMPORTS: &'static [&'static str] = &["wasi:blobstore/blobstore"];
    const NAME: &'static str = "blobstore";
    const GRANT: Grant = Grant::BlobContainers;
    type Component = Arc<Shared>;
    type Instance = Arc<Shared>;

    fn link(linker: &mut Linker<InstanceState>, _: Concurrency) -> Result<()> {
        types::add_to_linker::<_, Blobstore>(linker, view)?;
        container::add_to_linker::<_, Blobstore>(linker, view)?;
        blobstore::add_to_linker::<_, Blobstore>(linker, view)?;
        Ok(())
    }

    fn needs_concurrency(_: &str) -> bool {
        false
    }

    fn configure_app(app: &LoadedApp) -> Result<Self> {
        let root = match &app.runtime_config.blob_store {
            None => app.state_dir.join("blobs"),
            Some(table) => {
                table.only_keys(&["path"])?;
                if table.kind()? != "directory" && table.table.contains_key("type") {
                    return Err(table.error(format!("[blob_store] type `{}` is not supported", table.kind()?), "write type = \"directory\" with a path, or remove [blob_store] for <state_dir>/blobs").into());
                }
                table.path("path")?.ok_or_else(|| table.error("[blob_store] has no `path`", "add path = \"blobs\" (relative to the runtime-config file)"))?
            }
        };
        Ok(Self { root })
    }

    fn configure_component(&self, _: &LoadedApp, component: &LoadedComponent) -> Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            component: component.id.clone(),
            root: self.root.clone(),
            containers: component.blob_containers.iter().map(|(c, _)| c.clone()).collect(),
            max_read: component.limits.max_instance_memory,
        }))
    }

    fn instance(shared: &Arc<Shared>) -> Arc<Shared> {
        shared.clone()
    }
}

impl Shared {
    /// The directory of container `name`, if the name is valid and granted.
    fn container_dir(&self, name: &str) -> Result<PathBuf, String> {
        if name == "*" {
            return Err("`*` is not a container name".into());
        }
        if let Some(why) = tessera_manifest::blob_container_error(name) {
            return Err(why);
        }
        if !self.containers.iter().any(|c| c == "*" || c == name) {
            let component = &self.component;
            tracing::warn!("component `{component}` may not use blob container `{name}`; to allow it, add \"{name}\" to blob_containers in [component.{component}]");
            return Err(format!("container `{name}` is not permitted"));
        }
        Ok(self.root.join(name))
    }

    /// An existing container's directory.
    async fn existing(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.container_dir(name)?;
        match tokio::fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => Ok(dir),
            _ => Err(format!("container `{name}` does not exist")),
        }
    }
}

/// The file name an object is stored under: percent-encoded so it holds no `/`, and with a
/// leading `.` encoded so it never clashes with temporary files.
fn object_file(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("the object name is empty".into());
    }
    if name.len() > MAX_OBJECT_NAME {
        return Err(format!("the object name has {} bytes; the limit is {MAX_OBJECT_NAME}", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err("the object name has a control character".into());
    }
    if name.starts_with('/') || name.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("object name `{name}` has an absolute or `.`/`..` path; names are relative, like `photos/cat.jpg`"));
    }
    let mut file = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => file.push(b as char),
            b'.' if i > 0 => file.push('.'),
            _ => file.push_str(&format!("%{b:02X}")),
        }
    }
    if file.len() > 255 {
        return Err(format!("object name `{name}` is too long for the embedded store once encoded (255 bytes); use a shorter name"));
    }
    Ok(file)
}

/// The object name a stored file holds, or `None` for temporary files.
fn object_name(file: &str) -> Option<String> {
    if file.starts_with('.') {
        return None;
    }
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, renamed over.
async fn write_atomically(path: &Path, bytes: Bytes) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let dir = path.parent().expect("objects live in a container");
        let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        temp.write_all(&bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    })
    .await
    .expect("the write task does not panic")
}

/// Seconds since the Unix epoch of a file's creation (its modification where the file
/// system keeps no creation time).
fn created_at(meta: &std::fs::Metadata) -> u64 {
    meta.created()
        .or_else(|_| meta.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// The host functions' view of an instance.
pub struct BlobView<'a> {
    table: &'a mut ResourceTable,
    shared: Arc<Shared>,
}

impl HasData for Blobstore {
    type Data<'a> = BlobView<'a>;
}

fn view(s: &mut InstanceState) -> BlobView<'_> {
    let (table, shared) = s.capability::<Blobstore>();
    let shared = shared.clone();
    BlobView { table, shared }
}

fn io_error(what: &str, e: std::io::Error) -> String {
    format!("{what}: {e}")
}

impl BlobView<'_> {
    fn container(&self, c: &Resource<Container>) -> wasmtime::Result<(String, PathBuf)> {
        let c = self.table.get(c)?;
        Ok((c.name.clone(), c.dir.clone()))
    }
}

/// Source and destination files of a copy or move, both containers granted and existing.
async fn object_pair(shared: &Shared, src: &types::ObjectId, dest: &types::ObjectId) -> Result<(PathBuf, PathBuf), String> {
    let from = shared.existing(&src.container).await?.join(object_file(&src.object)?);
    let to = shared.existing(&dest.container).await?.join(object_file(&dest.object)?);
    if tokio::fs::metadata(&from).await.is_err() {
        return Err(format!("object `{}` does not exist in container `{}`", src.object, src.container));
    }
    Ok((from, to))
}

impl types::Host for BlobView<'_> {}

impl types::HostOutgoingValue for BlobView<'_> {
    async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        // The body is held until written; the instance's memory limit bounds it.
        let body = MemoryOutputPipe::new(self.shared.max_read as usize);
        Ok(self.table.push(OutgoingValue { body, stream_taken: false })?)
    }

    async fn outgoing_value_write_body(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        let v = self.table.get_mut(&value)?;
        if v.stream_taken {
            return Ok(Err(()));
        }
        v.stream_taken = true;
        let stream: DynOutputStream = Box::new(v.body.clone());
        Ok(Ok(self.table.push_child(stream, &value)?))
    }

    async fn finish(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<Result<(), String>> {
        self.table.delete(value)?;
        Ok(Ok(()))
    }

    async fn drop(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}

impl types::HostIncomingValue for BlobView<'_> {
    async fn incoming_value_consume_sync(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<Result<Vec<u8>, String>> {
        Ok(Ok(self.table.delete(value)?.bytes.to_vec()))
    }

    async fn incoming_value_consume_async(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<Result<Resource<DynInputStream>, String>> {
        let bytes = self.table.delete(value)?.bytes;
        let stream: DynInputStream = Box::new(MemoryInputPipe::new(bytes));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn size(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&value)?.bytes.len() as u64)
    }

    async fn drop(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}

impl container::Host for BlobView<'_> {}

impl container::HostContainer for BlobView<'_> {
    async fn name(&mut self, c: Resource<Container>) -> wasmtime::Result<Result<String, String>> {
        Ok(Ok(self.container(&c)?.0))
    }

    async fn info(&mut self, c: Resource<Container>) -> wasmtime::Result<Result<types::ContainerMetadata, String>> {
        let (name, dir) = self.container(&c)?;
        Ok(match tokio::fs::metadata(&dir).await {
            Ok(meta) => Ok(types::ContainerMetadata { name, created_at: created_at(&meta) }),
            Err(e) => Err(io_error(&format!("container `{name}`"), e)),
        })
    }

    async fn get_data(&mut self, c: Resource<Container>, name: String, start: u64, end: u64) -> wasmtime::Result<Result<Resource<IncomingValue>, String>> {
        let (container, dir) = self.container(&c)?;
        let file = match object_file(&name) {
            Ok(f) => dir.join(f),
            Err(e) => return Ok(Err(e)),
        };
        let max_read = self.shared.max_read;
        let read = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            use std::io::{Read as _, Seek as _};
            let mut f = std::fs::File::open(&file).map_err(|_| format!("object `{name}` does not exist in container `{container}`"))?;
            let size = f.metadata().map_err(|e| io_error("stat", e))?.len();
            if end < start {
                return Err(format!("the range {start}..={end} ends before it starts"));
            }
            if size == 0 || start >= size {
                return if start == 0 { Ok(Vec::new()) } else { Err(format!("the range starts at {start}, past the object's {size} bytes")) };
            }
            let len = end.min(size - 1) - start + 1;
            if len > max_read {
                return Err(format!("reading {len} bytes at once is over the instance's memory limit of {max_read} bytes; read the object in smaller ranges"));
            }
            f.seek(std::io::SeekFrom::Start(start)).map_err(|e| io_error("seek", e))?;
            let mut bytes = Vec::with_capacity(len as usize);
            f.take(len).read_to_end(&mut bytes).map_err(|e| io_error("read", e))?;
            Ok(bytes)
        })
        .await?;
        Ok(match read {
            Ok(bytes) => Ok(self.table.push(IncomingValue { bytes: bytes.into() })?),
            Err(e) => Err(e),
        })
    }

    async fn write_data(&mut self, c: Resource<Container>, name: String, data: Resource<OutgoingValue>) -> wasmtime::Result<Result<(), String>> {
        let (_, dir) = self.container(&c)?;
        let file = match object_file(&name) {
            Ok(f) => dir.join(f),
            Err(e) => return Ok(Err(e)),
        };
        let bytes = self.table.get(&data)?.body.contents();
        Ok(write_atomically(&file, bytes).await.map_err(|e| io_error(&format!("cannot write object `{name}`"), e)))
    }

    async fn list_objects(&mut self, c: Resource<Container>) -> wasmtime::Result<Result<Resource<ObjectNames>, String>> {
        let (container, dir) = self.container(&c)?;
        let mut names = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) => return Ok(Err(io_error(&format!("container `{container}`"), e))),
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            if let Some(name) = entry.file_name().to_str().and_then(object_name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(Ok(self.table.push(ObjectNames { names: names.into_iter() })?))
    }

    async fn delete_object(&mut self, c: Resource<Container>, name: String) -> wasmtime::Result<Result<(), String>> {
        self.delete_objects(c, vec![name]).await
    }

    async fn delete_objects(&mut self, c: Resource<Container>, names: Vec<String>) -> wasmtime::Result<Result<(), String>> {
        let (_, dir) = self.container(&c)?;
        for name in names {
            let file = match object_file(&name) {
                Ok(f) => dir.join(f),
                Err(e) => return Ok(Err(e)),
            };
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Ok(Err(io_error(&format!("cannot delete object `{name}`"), e))),
            }
        }
        Ok(Ok(()))
    }

    async fn has_object(&mut self, c: Resource<Container>, name: String) -> wasmtime::Result<Result<bool, String>> {
        let (_, dir) = self.container(&c)?;
        Ok(object_file(&name).map(|f| dir.join(f).is_file()))
    }

    async fn object_info(&mut self, c: Resource<Container>, name: String) -> wasmtime::Result<Result<types::ObjectMetadata, String>> {
        let (container, dir) = self.container(&c)?;
        let file = match object_file(&name) {
            Ok(f) => dir.join(f),
            Err(e) => return Ok(Err(e)),
        };
        Ok(match tokio::fs::metadata(&file).await {
            Ok(meta) => Ok(types::ObjectMetadata { name, container, created_at: created_at(&meta), size: meta.len() }),
            Err(_) => Err(format!("object `{name}` does not exist in container `{container}`")),
        })
    }

    async fn clear(&mut self, c: Resource<Container>) -> wasmtime::Result<Result<(), String>> {
        let (container, dir) = self.container(&c)?;
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) => return Ok(Err(io_error(&format!("container `{container}`"), e))),
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.file_name().to_str().and_then(object_name).is_some()
                && let Err(e) = tokio::fs::remove_file(entry.path()).await
            {
                return Ok(Err(io_error("cannot clear the container", e)));
            }
        }
        Ok(Ok(()))
    }

    async fn drop(&mut self, c: Resource<Container>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl container::HostStreamObjectNames for BlobView<'_> {
    async fn read_stream_object_names(&mut self, names: Resource<ObjectNames>, len: u64) -> wasmtime::Result<Result<(Vec<String>, bool), String>> {
        let names = &mut self.table.get_mut(&names)?.names;
        let batch: Vec<String> = names.by_ref().take(len.min(usize::MAX as u64) as usize).collect();
        Ok(Ok((batch, names.len() == 0)))
    }

    async fn skip_stream_object_names(&mut self, names: Resource<ObjectNames>, num: u64) -> wasmtime::Result<Result<(u64, bool), String>> {
        let names = &mut self.table.get_mut(&names)?.names;
        let skipped = names.by_ref().take(num.min(usize::MAX as u64) as usize).count() as u64;
        Ok(Ok((skipped, names.len() == 0)))
    }

    async fn drop(&mut self, names: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.table.delete(names)?;
        Ok(())
    }
}

impl blobstore::Host for BlobView<'_> {
    async fn create_container(&mut self, name: String) -> wasmtime::Result<Result<Resource<Container>, String>> {
        let dir = match self.shared.container_dir(&name) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = tokio::fs::create_dir_all(&self.shared.root).await {
            return Ok(Err(io_error(&format!("cannot create the blob store at {}", self.shared.root.display()), e)));
        }
        Ok(match tokio::fs::create_dir(&dir).await {
            Ok(()) => Ok(self.table.push(Container { name, dir })?),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(format!("container `{name}` already exists")),
            Err(e) => Err(io_error(&format!("cannot create container `{name}`"), e)),
        })
    }

    async fn get_container(&mut self, name: String) -> wasmtime::Result<Result<Resource<Container>, String>> {
        Ok(match self.shared.existing(&name).await {
            Ok(dir) => Ok(self.table.push(Container { name, dir })?),
            Err(e) => Err(e),
        })
    }

    async fn delete_container(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        let dir = match self.shared.existing(&name).await {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        Ok(tokio::fs::remove_dir_all(&dir).await.map_err(|e| io_error(&format!("cannot delete container `{name}`"), e)))
    }

    async fn container_exists(&mut self, name: String) -> wasmtime::Result<Result<bool, String>> {
        Ok(self.shared.container_dir(&name).map(|d| d.is_dir()))
    }

    async fn copy_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> wasmtime::Result<Result<(), String>> {
        let (from, to) = match object_pair(&self.shared.clone(), &src, &dest).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let bytes = match tokio::fs::read(&from).await {
            Ok(b) => b,
            Err(e) => return Ok(Err(io_error("cannot read the source object", e))),
        };
        Ok(write_atomically(&to, bytes.into()).await.map_err(|e| io_error("cannot write the copy", e)))
    }

    async fn move_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> wasmtime::Result<Result<(), String>> {
        let (from, to) = match object_pair(&self.shared.clone(), &src, &dest).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(tokio::fs::rename(&from, &to).await.map_err(|e| io_error("cannot move the object", e)))
    }
}

#[cfg(test)]
mod tests {
    use super::{object_file, object_name};

    #[test]
    fn object_names_stay_inside_their_container() {
        for name in ["cat.jpg", "photos/2024/cat.jpg", "naïve name", "a%b", ".hidden", "x..y"] {
            let file = object_file(name).unwrap();
            assert!(!file.contains('/') && !file.starts_with('.'), "{name} -> {file}");
            assert_eq!(object_name(&file).as_deref(), Some(name));
        }
        for name in ["", "../secret", "a/../../b", "/etc/passwd", "a/./b", "..", "tab\there"] {
            assert!(object_file(name).is_err(), "{name:?}");
        }
        assert!(object_file(&"x".repeat(300)).unwrap_err().contains("too long"));
        assert_eq!(object_name(".tmp-123"), None);
    }
}
