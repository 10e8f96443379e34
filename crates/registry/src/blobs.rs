//! The content-addressed blob cache (`<dir>/sha256/<hex>`) shared by registry pulls and
//! pinned component sources. A blob is streamed to a temporary file beside its final
//! place while it is hashed, and renamed into place only when the digest matches: a bad
//! or interrupted download leaves nothing behind.

use anyhow::{Context as _, Result, bail};
use futures::{Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::PathBuf;

/// Blobs at or above this size get a progress bar (on a terminal).
const PROGRESS_MIN: u64 = 4 << 20;

/// Blobs by digest, each written only after its digest was checked.
pub(crate) struct BlobCache {
    pub(crate) dir: PathBuf,
}

impl BlobCache {
    /// Where the blob with `digest` lives, whether or not it is there yet.
    pub(crate) fn path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.dir.join("sha256").join(sha256_hex(digest)?))
    }

    /// The cached blob's bytes.
    pub(crate) fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.path(digest)?;
        std::fs::read(&path).with_context(|| format!("blob {digest} is missing from the cache ({})", path.display()))
    }

    /// The cached blob's path if it is there and still matches its digest; a blob changed
    /// on disk since it was stored is removed so that it is downloaded again.
    pub(crate) fn verified(&self, digest: &str) -> Result<Option<PathBuf>> {
        let path = self.path(digest)?;
        match std::fs::read(&path) {
            Ok(bytes) if digest_of(&bytes) == digest => Ok(Some(path)),
            Ok(_) => {
                tracing::warn!("cached blob {} no longer matches its digest; downloading it again", path.display());
                std::fs::remove_file(&path)?;
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Streams a download into the cache, checking it against `digest`; returns the bytes
    /// written. `what` names the download in errors and on the progress bar.
    pub(crate) async fn store<S, E>(&self, digest: &str, size: Option<u64>, what: &str, mut stream: S) -> Result<u64>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.path(digest)?;
        let dir = path.parent().expect("blob dir");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Removed when dropped: on any error below nothing of the download stays.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let progress = Progress::new(what, size);
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow::anyhow!("download of {what} failed: {e}"))?;
            hasher.update(&chunk);
            tmp.write_all(&chunk).with_context(|| format!("cannot write {}", tmp.path().display()))?;
            written += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            bail!("invalid content digest for {what}: expected {digest}, downloaded {actual}; nothing was kept");
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(written)
    }
}

/// A progress bar on stderr for large transfers; hidden when stderr is not a terminal.
#[derive(Clone)]
pub(crate) struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub(crate) fn new(what: &str, size: Option<u64>) -> Self {
        let Some(size) = size.filter(|s| *s >= PROGRESS_MIN) else { return Self(None) };
        let bar = indicatif::ProgressBar::new(size);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Self(Some(bar))
    }

    pub(crate) fn advance(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, refusing anything else (it becomes a file name).
fn sha256_hex(digest: &str) -> Result<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .with_context(|| format!("`{digest}` is not a sha256 digest (sha256: and 64 lowercase hex digits)"))
}
