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
use std::sync::Arc;
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

/// Replace `path` with `h` (renewal).
fn write_atomic(path: &Path, h: &Holder) -> Result<()> {
    std::fs::rename(temp_file(path, h)?, path)?;
    Ok(())
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
                    // Only one of several runs taking over at once can move
                    // the stale file away, and only one can create the new.
                    let stale = path.with_extension(format!("json.stale.{run_id}"));
                    let moved = std::fs::rename(&path, &stale);
                    let _ = std::fs::remove_file(&stale);
                    if moved.is_err() || create_complete(&path, &mine).is_err() {
                        bail!(
                            "another scan took the lease of {} at the same time",
                            out.display()
                        );
                    }
                }
            },
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (path, run_id, lost) = (path.clone(), run_id.to_string(), lost.clone());
            rt.spawn(async move {
                let every = Duration::from_secs((seconds / 4).max(1));
                loop {
                    tokio::time::sleep(every).await;
                    match read(&path) {
                        Some(h) if h.run_id == run_id => {
                            let renewed = holder(&run_id, &h.acquired_at, seconds);
                            if let Err(e) = write_atomic(&path, &renewed) {
                                tracing::warn!("renewing the lease {}: {e:#}", path.display());
                            }
                        }
                        _ => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
        });
        Ok(Lease {
            path,
            run_id: run_id.into(),
            lost,
            renewal,
        })
    }

    /// Fail unless this run still holds the lease (checked before each
    /// commit: a run that stalled past its lease must not publish over the
    /// run that took it).
    pub fn check(&self) -> Result<()> {
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
}
