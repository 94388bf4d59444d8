//! A job's hold on an output (`dajia scan`, `dajia vacuum`): one file,
//! `OUT/_lease.json`, created exclusively, renewed while the job runs and
//! removed at its end.
//!
//! Why one hold per output rather than per date: the output tables are
//! shared by every date, and "the last run that succeeded" (which readers
//! pin to, see `delta::published`) only means something when runs commit one
//! after the other. A second scan of the same output fails at once, before
//! any work, naming the holder. A killed scan cannot remove its file: its
//! hold lapses `scan.lease_seconds` after its last renewal.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Holder {
    run_id: String,
    host: String,
    /// This boot of `host` (`/proc/sys/kernel/random/boot_id`): a pid is
    /// only meaningful within one boot (and one pid namespace).
    #[serde(default)]
    boot: String,
    pid: u32,
    acquired_at: String,
    /// RFC 3339; after this the hold has lapsed and another run may take it.
    expires_at: String,
}

impl Holder {
    fn expired(&self) -> bool {
        chrono::DateTime::parse_from_rfc3339(&self.expires_at)
            .map(|t| t < chrono::Utc::now())
            .unwrap_or(true)
    }
    /// Expired, or held by a process of this host that no longer exists (a
    /// killed scan, rerun on the same machine, need not wait for the expiry).
    fn lapsed(&self) -> bool {
        let (host, boot) = (hostname(), boot_id());
        let here = !host.is_empty() && !boot.is_empty() && self.host == host && self.boot == boot;
        self.expired() || (here && !pid_alive(self.pid))
    }
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return true; // not a pid of this system: assume alive, wait for expiry
    };
    // SAFETY: signal 0 sends nothing; it only checks the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A held lease; dropping it stops the renewal and removes the file.
pub struct Lease {
    path: PathBuf,
    run_id: String,
    lost: Arc<AtomicBool>,
    /// Held while the renewal swaps the file (it is briefly absent then).
    swapping: Arc<Mutex<()>>,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

pub fn path(out: &Path) -> PathBuf {
    out.join("_lease.json")
}

/// `h` in a synced temporary file next to `path`.
fn temp_file(path: &Path, h: &Holder) -> Result<PathBuf> {
    use std::io::Write;
    let tmp = path.with_extension(format!("json.{}.tmp", h.run_id));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(h)?)?;
    f.sync_all()?;
    Ok(tmp)
}

/// Replace `path` with `h` unconditionally (tests set up holders with it).
#[cfg(test)]
fn write_atomic(path: &Path, h: &Holder) -> Result<()> {
    std::fs::rename(temp_file(path, h)?, path)?;
    Ok(())
}

/// Compare-and-swap on a file, for a filesystem that has no such call:
/// `path` is renamed to `aside` (atomic: of several runs doing this at
/// once, exactly one gets the file); if what it moved is `expected`, `new`
/// is created in its place (a hard link, which fails if another run created
/// a lease in the meantime); if not, the file is put back untouched.
/// Reading and then writing instead would let a run renew over a lease that
/// another had just taken over (or take over one just renewed), and both
/// would believe they hold it.
fn swap(
    path: &Path,
    aside: &Path,
    expected: impl Fn(Option<&Holder>) -> bool,
    new: &Holder,
) -> bool {
    if std::fs::rename(path, aside).is_err() {
        return false; // moved by another run first, or removed
    }
    let moved = read(aside);
    let swapped = expected(moved.as_ref()) && create_complete(path, new).is_ok();
    if !swapped && moved.as_ref().is_some_and(|h| h.run_id != new.run_id) {
        // Not ours to replace: put it back, unless a new lease exists.
        let _ = std::fs::hard_link(aside, path);
    }
    let _ = std::fs::remove_file(aside);
    swapped
}

/// Replace the lapsed lease `seen` (`None`: an unreadable file) with `mine`,
/// only if the file still holds `seen`: its holder may have renewed it since
/// it was read, or another run may have taken it over.
fn take_over(path: &Path, seen: Option<&Holder>, mine: &Holder) -> Result<()> {
    let aside = path.with_extension(format!("json.stale.{}", mine.run_id));
    if !swap(path, &aside, |moved| moved == seen, mine) {
        bail!("the lease changed while it was being taken over");
    }
    Ok(())
}

/// Extend this run's lease by `seconds`; `false` when it is no longer this
/// run's (another run took it over).
fn renew(path: &Path, run_id: &str, seconds: u64) -> bool {
    let Some(h) = read(path).filter(|h| h.run_id == run_id) else {
        return false;
    };
    let aside = path.with_extension(format!("json.renew.{run_id}"));
    let renewed = holder(run_id, &h.acquired_at, seconds);
    swap(
        path,
        &aside,
        |moved| moved.is_some_and(|m| m.run_id == run_id),
        &renewed,
    )
}

/// Create `path` holding `h`, complete, or fail if it exists: a hard link
/// of a finished file never shows a reader a half-written lease.
fn create_complete(path: &Path, h: &Holder) -> std::io::Result<()> {
    let tmp = temp_file(path, h).map_err(std::io::Error::other)?;
    let r = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    r
}

fn read(path: &Path) -> Option<Holder> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn holder(run_id: &str, acquired_at: &str, seconds: u64) -> Holder {
    Holder {
        run_id: run_id.into(),
        host: hostname(),
        boot: boot_id(),
        pid: std::process::id(),
        acquired_at: acquired_at.into(),
        expires_at: (chrono::Utc::now() + chrono::Duration::seconds(seconds as i64)).to_rfc3339(),
    }
}

/// This machine's name; empty when unknown (then no lease is judged local).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer outlives the call, and its length is passed.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Lease {
    /// Take the output's lease for `run_id`, or fail naming the run that
    /// holds it. A lapsed or unreadable lease file is taken over.
    pub fn acquire(out: &Path, run_id: &str, seconds: u64) -> Result<Lease> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let path = path(out);
        let now = chrono::Utc::now().to_rfc3339();
        let mine = holder(run_id, &now, seconds);
        match create_complete(&path, &mine) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read(&path) {
                Some(h) if !h.lapsed() => bail!(
                    "another scan holds {}: run {} (host {}, pid {}, since {}, until {}); \
                     wait for it, or if it was killed delete {} (it lapses by itself at that time)",
                    out.display(),
                    h.run_id,
                    h.host,
                    h.pid,
                    h.acquired_at,
                    h.expires_at,
                    path.display()
                ),
                lapsed => {
                    if let Some(h) = &lapsed {
                        tracing::warn!(
                            "taking over the lapsed lease of run {} (expired {})",
                            h.run_id,
                            h.expires_at
                        );
                    }
                    take_over(&path, lapsed.as_ref(), &mine).with_context(|| {
                        format!(
                            "another scan took the lease of {} at the same time",
                            out.display()
                        )
                    })?;
                }
            },
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        let lost = Arc::new(AtomicBool::new(false));
        let swapping = Arc::new(Mutex::new(()));
        let renewal = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (path, run_id) = (path.clone(), run_id.to_string());
            let (lost, swapping) = (lost.clone(), swapping.clone());
            rt.spawn(async move {
                let every = Duration::from_secs((seconds / 4).max(1));
                loop {
                    tokio::time::sleep(every).await;
                    let renewed = {
                        let _swap = swapping.lock().unwrap_or_else(|p| p.into_inner());
                        renew(&path, &run_id, seconds)
                    };
                    if !renewed {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            })
        });
        Ok(Lease {
            path,
            run_id: run_id.into(),
            lost,
            swapping,
            renewal,
        })
    }

    /// Fail unless this run still holds the lease (checked before each
    /// commit: a run that stalled past its lease must not publish over the
    /// run that took it).
    pub fn check(&self) -> Result<()> {
        // Not while the renewal has the file moved aside.
        let _swap = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        let ours = read(&self.path).is_some_and(|h| h.run_id == self.run_id && !h.expired());
        if self.lost.load(Ordering::SeqCst) || !ours {
            bail!(
                "run {} lost its lease on the output ({}): another scan took it; publishing nothing more",
                self.run_id,
                self.path.display()
            );
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
        let _swap = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        if read(&self.path).is_some_and(|h| h.run_id == self.run_id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lease_refuses_a_second_run_and_a_lapsed_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = Lease::acquire(dir.path(), "run-a", 600).unwrap();
        let e = Lease::acquire(dir.path(), "run-b", 600)
            .err()
            .expect("refused while run-a holds it")
            .to_string();
        assert!(e.contains("run-a") && e.contains("_lease.json"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        a.check().unwrap();
        drop(a);
        assert!(!path(dir.path()).exists(), "released at the end");

        // A killed run's lease (never removed) lapses.
        let mut dead = holder("run-dead", "2026-01-01T00:00:00Z", 0);
        dead.expires_at = "2026-01-01T00:10:00Z".into();
        dead.host = "another-host".into();
        write_atomic(&path(dir.path()), &dead).unwrap();
        let c = Lease::acquire(dir.path(), "run-c", 600).unwrap();
        drop(c);
        // ... and so does one of a process of this host that is gone, at once.
        let mut gone = holder("run-gone", "now", 600);
        gone.pid = i32::MAX as u32; // above any pid_max: no such process
        write_atomic(&path(dir.path()), &gone).unwrap();
        let c = Lease::acquire(dir.path(), "run-c", 600).unwrap();
        c.check().unwrap();
        // A run whose lease another took fails its check.
        write_atomic(&path(dir.path()), &holder("run-d", "now", 600)).unwrap();
        assert!(c
            .check()
            .unwrap_err()
            .to_string()
            .contains("lost its lease"));
        drop(c);
        assert!(
            path(dir.path()).exists(),
            "run-d's lease is not removed by run-c"
        );
    }

    #[test]
    fn an_unreadable_lease_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{not json").unwrap();
        Lease::acquire(dir.path(), "run-a", 600)
            .unwrap()
            .check()
            .unwrap();
    }

    #[test]
    fn renewal_and_takeover_compare_before_they_swap() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        let a = Lease::acquire(dir.path(), "run-a", 600).unwrap();
        // run-b read run-a's lease when it looked lapsed; run-a has renewed
        // it since: run-b's takeover must fail and leave run-a's lease.
        let mut seen = read(&p).unwrap();
        seen.expires_at = "2026-01-01T00:10:00Z".into();
        let b = holder("run-b", "now", 600);
        assert!(take_over(&p, Some(&seen), &b).is_err());
        assert_eq!(read(&p).unwrap().run_id, "run-a");
        a.check().unwrap();
        assert!(renew(&p, "run-a", 600));
        a.check().unwrap();
        // Taken over by run-b: run-a's renewal must not write over it.
        let now = read(&p).unwrap();
        take_over(&p, Some(&now), &b).unwrap();
        assert!(!renew(&p, "run-a", 600));
        assert_eq!(read(&p).unwrap().run_id, "run-b");
        assert!(a.check().is_err());
        drop(a);
        assert_eq!(read(&p).unwrap().run_id, "run-b", "not removed by run-a");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no moved-aside files left"
        );
    }
}
