//! Hands back the pages of the shim binary that only starting touched: the app's, in the
//! task, and the first container's, in the shim daemon.
//!
//! The task is cloned from a 50 MB binary (wasmtime, containerd's client, libcontainer).
//! Loading an app runs code spread over half its text, and the kernel maps 64 KiB around
//! each fault, so an idle task kept about 15 MiB of the binary mapped that it would never
//! run again. Once the app serves, those mappings are dropped: the pages stay in the page
//! cache (shared by every container on the node), and what the app runs afterwards is
//! mapped again on its first use, a minor fault each.

use std::ops::Range;
use std::time::{Duration, Instant};

/// Drops this process's mappings of its own code and of the read-only data no one wrote.
/// Written pages (relocations made read-only after start-up) are left alone: dropping them
/// would bring back the file's unrelocated contents.
pub fn release() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let own = release as *const () as usize;
    let Some(binary) = mappings(&smaps).find(|m| m.range.contains(&own)).map(|m| m.file) else { return };
    let mut released = 0;
    for mapping in mappings(&smaps).filter(|m| m.file == binary && m.droppable()) {
        // SAFETY: the range is a private, read-only mapping of the binary with no page
        // of its own (Anonymous: 0): dropping it only makes the next access read the same
        // bytes from the page cache again.
        let result = unsafe { libc::madvise(mapping.range.start as *mut libc::c_void, mapping.range.len(), libc::MADV_DONTNEED) };
        if result == 0 {
            released += mapping.resident_kib;
        }
    }
    tracing::debug!("released {released} KiB of start-up code and read-only data");
}

/// [`release`] on a thread of its own after `delay`, for a process (the shim daemon) that
/// has no point at which it knows it has finished starting.
pub fn release_after(delay: Duration) {
    let _ = std::thread::Builder::new().name("release-start-up-pages".into()).spawn(move || {
        std::thread::sleep(delay);
        release();
    });
}

/// [`release`] each time the app has been idle for `idle` after doing something: `activity`
/// counts what it did (invocations started). What serving touched is then dropped too, and
/// the next request maps it again from the page cache (a minor fault per 64 KiB).
pub fn release_when_idle(activity: impl Fn() -> u64 + Send + 'static, idle: Duration) {
    let _ = std::thread::Builder::new().name("release-idle-pages".into()).spawn(move || each_idle_spell(activity, idle, release));
}

/// Runs `action` once per spell of `idle` without a change of `activity` that follows a
/// change (the spell at start counts as following one); never returns.
fn each_idle_spell(activity: impl Fn() -> u64, idle: Duration, mut action: impl FnMut()) {
    let (mut seen, mut changed, mut acted) = (activity(), Instant::now(), false);
    loop {
        std::thread::sleep(idle / 4);
        let now = activity();
        if now != seen {
            (seen, changed, acted) = (now, Instant::now(), false);
        } else if !acted && changed.elapsed() >= idle {
            action();
            acted = true;
        }
    }
}

/// One mapping of `/proc/self/smaps`.
struct Mapping<'a> {
    range: Range<usize>,
    permissions: &'a str,
    /// `device inode path`: the same for every mapping of one file.
    file: &'a str,
    anonymous_kib: u64,
    resident_kib: u64,
}

impl Mapping<'_> {
    fn droppable(&self) -> bool {
        matches!(self.permissions, "r-xp" | "r--p") && self.anonymous_kib == 0
    }
}

fn mappings(smaps: &str) -> impl Iterator<Item = Mapping<'_>> {
    let mut lines = smaps.lines().peekable();
    std::iter::from_fn(move || {
        let header = lines.next()?;
        // `start-end perms offset dev inode [path]`
        let mut fields = header.splitn(4, ' ');
        let (start, end) = fields.next()?.split_once('-')?;
        let permissions = fields.next()?;
        let _offset = fields.next()?;
        let file = fields.next().unwrap_or("").trim_end();
        let (mut anonymous_kib, mut resident_kib) = (0, 0);
        while let Some(line) = lines.next_if(|l| !is_header(l)) {
            let kib = || line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            if line.starts_with("Anonymous:") {
                anonymous_kib = kib();
            } else if line.starts_with("Rss:") {
                resident_kib = kib();
            }
        }
        Some(Mapping {
            range: usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?,
            permissions,
            file,
            anonymous_kib,
            resident_kib,
        })
    })
}

/// A mapping's first line starts with its address range; its fields start with a name.
fn is_header(line: &str) -> bool {
    line.split_once(' ').is_some_and(|(range, _)| range.contains('-') && range.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_released_once_per_idle_spell_after_activity() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let (activity, released) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (count, done) = (activity.clone(), released.clone());
        std::thread::spawn(move || {
            each_idle_spell(move || count.load(Ordering::Relaxed), Duration::from_millis(200), move || {
                done.fetch_add(1, Ordering::Relaxed);
            })
        });
        // Busy: a request every 5 ms, never 200 ms apart.
        for _ in 0..20 {
            activity.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(released.load(Ordering::Relaxed), 0, "nothing is released while the app is busy");
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(released.load(Ordering::Relaxed), 1, "one release per idle spell, however long");
        activity.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(released.load(Ordering::Relaxed), 2, "a request, then idle again: released again");
    }

    #[test]
    fn only_the_binarys_unwritten_read_only_mappings_are_dropped() {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let own = only_the_binarys_unwritten_read_only_mappings_are_dropped as *const () as usize;
        let all: Vec<_> = mappings(&smaps).collect();
        let binary = all.iter().find(|m| m.range.contains(&own)).expect("the test's own code is mapped").file;
        assert!(binary.contains('/'), "the code's mapping names the binary: {binary:?}");
        let droppable: Vec<_> = all.iter().filter(|m| m.file == binary && m.droppable()).collect();
        assert!(droppable.iter().any(|m| m.permissions == "r-xp"), "the text is dropped");
        assert!(droppable.iter().all(|m| m.anonymous_kib == 0 && !m.permissions.contains('w')));
        // Dropping them leaves the process running the same code.
        release();
        assert_eq!(std::hint::black_box(21) * 2, 42);
    }
}
