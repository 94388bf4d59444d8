//! Image bytes behind `images.uri`: what a catalog row may point at, and
//! fetching it concurrently within the byte limit.
//!
//! A catalog is data from outside; its `uri`s are treated as untrusted:
//! - a relative `uri` resolves inside the catalog root: no `..`, no absolute
//!   paths, no symbolic link that leads out of the root;
//! - only regular files are read (no devices, FIFOs or sockets);
//! - `file://` URLs only inside the catalog root; `s3://` only in the
//!   catalog's own bucket; anything else (another bucket, `http(s)://`) only
//!   under a prefix listed in `images.uri_allow`, and a refused URL is never
//!   contacted;
//! - the byte limit is enforced while reading, not from a reported size
//!   (`/dev/zero` and `/proc` files report 0 bytes);
//! - a refusal names the rule it broke, never the content it found.
//!
//! Object stores are one client per store for the whole stage; their
//! transient errors are retried with exponential backoff by object_store's
//! own `RetryConfig` (its defaults: up to 10 retries within 3 minutes).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncReadExt;
use url::Url;

/// Where relative `uri`s live: the catalog's folder or its bucket prefix.
#[derive(Debug, Clone)]
enum Root {
    Local(PathBuf),
    Bucket { bucket: Url, prefix: String },
}

/// Where a catalog's relative `uri`s resolve: an `s3://` catalog as given,
/// a local one as an absolute path.
pub fn catalog_root(catalog: &str) -> Result<String> {
    if crate::store::is_s3(catalog) {
        Ok(catalog.to_string())
    } else {
        Ok(crate::catalog::local_path(catalog)?
            .to_string_lossy()
            .into_owned())
    }
}

/// Resolves and fetches the `uri`s of one catalog.
pub struct Fetcher {
    root: Root,
    /// URL prefixes outside the catalog that may be read, each ending in `/`.
    allow: Vec<String>,
    max_bytes: usize,
    concurrency: usize,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

/// What a `uri` resolved to.
#[derive(Debug, PartialEq)]
enum Target {
    File(PathBuf),
    Object {
        /// The store's base URL (`s3://bucket`, `https://host:port`).
        store: String,
        path: object_store::path::Path,
    },
}

impl Fetcher {
    /// `catalog_root`: the catalog's folder or `s3://bucket/prefix`;
    /// `allow`: comma-separated URL prefixes also allowed.
    pub fn new(
        catalog_root: &str,
        allow: &str,
        max_bytes: usize,
        concurrency: usize,
    ) -> Result<Self> {
        let root = if crate::store::is_s3(catalog_root) {
            let (bucket, prefix) = crate::store::split_s3(catalog_root)?;
            Root::Bucket {
                bucket,
                prefix: prefix.trim_matches('/').to_string(),
            }
        } else {
            // Canonical, so that containment is checked on resolved paths.
            Root::Local(
                std::fs::canonicalize(catalog_root)
                    .with_context(|| format!("catalog root {catalog_root}"))?,
            )
        };
        let allow = allow_prefixes(allow)?;
        Ok(Fetcher {
            root,
            allow,
            max_bytes,
            concurrency: concurrency.max(1),
            stores: Mutex::new(HashMap::new()),
        })
    }

    /// Fetches every `(row, uri)` with at most `concurrency` in flight;
    /// each row's bytes or the reason it has none.
    pub async fn fetch_all(&self, uris: Vec<(usize, String)>) -> Vec<(usize, Result<Vec<u8>>)> {
        futures::stream::iter(uris)
            .map(|(i, u)| async move { (i, self.fetch(&u).await) })
            .buffer_unordered(self.concurrency)
            .collect()
            .await
    }

    /// The bytes behind one `uri`.
    pub async fn fetch(&self, uri: &str) -> Result<Vec<u8>> {
        match self.resolve(uri).await? {
            Target::File(p) => self.read_file(&p).await,
            Target::Object { store, path } => self.read_object(&store, &path).await,
        }
    }

    async fn resolve(&self, uri: &str) -> Result<Target> {
        match Url::parse(uri) {
            Ok(url) => self.resolve_url(url).await,
            Err(url::ParseError::RelativeUrlWithoutBase) => self.resolve_relative(uri).await,
            Err(e) => bail!("refused: not a URL nor a path relative to the catalog ({e})"),
        }
    }

    async fn resolve_relative(&self, rel: &str) -> Result<Target> {
        if rel.starts_with('/') || rel.starts_with('\\') {
            bail!("refused: an absolute path (a uri is relative to the catalog, or a URL)");
        }
        let mut clean = PathBuf::new();
        for c in Path::new(rel).components() {
            match c {
                Component::Normal(s) => clean.push(s),
                Component::CurDir => {}
                Component::ParentDir => bail!("refused: `..` leaves the catalog"),
                Component::RootDir | Component::Prefix(_) => {
                    bail!("refused: an absolute path (a uri is relative to the catalog)")
                }
            }
        }
        if clean.as_os_str().is_empty() {
            bail!("refused: an empty path");
        }
        match &self.root {
            Root::Local(dir) => Ok(Target::File(
                inside(
                    dir,
                    &dir.join(&clean),
                    "a link that leads out of the catalog",
                )
                .await?,
            )),
            Root::Bucket { bucket, prefix } => {
                let key = clean.to_string_lossy().replace('\\', "/");
                let key = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}/{key}")
                };
                Ok(Target::Object {
                    store: bucket.as_str().trim_end_matches('/').to_string(),
                    path: object_store::path::Path::from(key),
                })
            }
        }
    }

    async fn resolve_url(&self, url: Url) -> Result<Target> {
        let allowed = self
            .allow
            .iter()
            .any(|p| url.as_str().starts_with(p.as_str()));
        match url.scheme() {
            "file" => {
                let p = url
                    .to_file_path()
                    .map_err(|_| anyhow!("refused: a file URL without a local path"))?;
                match &self.root {
                    Root::Local(dir) if !allowed => Ok(Target::File(
                        inside(dir, &p, "file URLs are read only inside the catalog").await?,
                    )),
                    _ if allowed => Ok(Target::File(p)),
                    _ => bail!("refused: file URLs are read only inside the catalog"),
                }
            }
            "s3" => {
                let bucket = url.host_str().unwrap_or_default();
                let own = matches!(&self.root, Root::Bucket { bucket: b, .. } if b.host_str() == Some(bucket));
                if !own && !allowed {
                    bail!("refused: bucket `{bucket}` is not the catalog's (images.uri_allow lists others that may be read)");
                }
                Ok(Target::Object {
                    store: format!("s3://{bucket}"),
                    path: object_store::path::Path::from_url_path(url.path())?,
                })
            }
            "http" | "https" if allowed => Ok(Target::Object {
                store: url.origin().ascii_serialization(),
                path: object_store::path::Path::from_url_path(url.path())?,
            }),
            "http" | "https" => bail!(
                "refused: {} is not under a prefix of images.uri_allow (not contacted)",
                url.origin().ascii_serialization()
            ),
            other => bail!("refused: `{other}:` URLs are not read"),
        }
    }

    /// A regular file, read up to the limit (whatever size it reports).
    async fn read_file(&self, p: &Path) -> Result<Vec<u8>> {
        let f = tokio::fs::File::open(p)
            .await
            .with_context(|| format!("reading {}", p.display()))?;
        // Checked on the opened handle: what is read is what was checked.
        let meta = f.metadata().await?;
        if !meta.is_file() {
            bail!("refused: not a regular file (a device, FIFO, socket or folder)");
        }
        if meta.len() > self.max_bytes as u64 {
            return Err(self.too_big(meta.len()));
        }
        let mut out = Vec::new();
        f.take(self.max_bytes as u64 + 1)
            .read_to_end(&mut out)
            .await
            .with_context(|| format!("reading {}", p.display()))?;
        if out.len() > self.max_bytes {
            return Err(self.too_big_streamed());
        }
        Ok(out)
    }

    async fn read_object(&self, store: &str, path: &object_store::path::Path) -> Result<Vec<u8>> {
        let s = self.store(store)?;
        let got = s.get(path).await?;
        if got.meta.size > self.max_bytes as u64 {
            return Err(self.too_big(got.meta.size));
        }
        let mut out = Vec::new();
        let mut chunks = got.into_stream();
        while let Some(chunk) = chunks.try_next().await? {
            if out.len() + chunk.len() > self.max_bytes {
                return Err(self.too_big_streamed());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// One client per store for the fetcher's life.
    fn store(&self, base: &str) -> Result<Arc<dyn ObjectStore>> {
        let mut stores = self.stores.lock().expect("stores");
        if let Some(s) = stores.get(base) {
            return Ok(s.clone());
        }
        let url = Url::parse(base)?;
        let s: Arc<dyn ObjectStore> = if url.scheme() == "s3" {
            // The same environment-configured client as the catalog's.
            crate::store::s3_store(&url)?
        } else {
            Arc::from(object_store::parse_url(&url)?.0)
        };
        stores.insert(base.to_string(), s.clone());
        Ok(s)
    }

    fn too_big(&self, n: u64) -> anyhow::Error {
        anyhow!("{n} bytes, over images.max_bytes={}", self.max_bytes)
    }

    fn too_big_streamed(&self) -> anyhow::Error {
        anyhow!(
            "more than images.max_bytes={} bytes (stopped reading)",
            self.max_bytes
        )
    }
}

/// The URL prefixes of `images.uri_allow` (comma-separated), each ending
/// at a path boundary: `https://a.com` must not admit `https://a.com.evil.org/`.
pub(crate) fn allow_prefixes(allow: &str) -> Result<Vec<String>> {
    allow
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let url =
                Url::parse(p).map_err(|e| anyhow!("images.uri_allow: `{p}` is not a URL ({e})"))?;
            let s = url.as_str();
            Ok(if s.ends_with('/') {
                s.to_string()
            } else {
                format!("{s}/")
            })
        })
        .collect()
}

/// `path` with its links resolved, if that is still inside `dir`; else
/// refused as `why`.
async fn inside(dir: &Path, path: &Path, why: &str) -> Result<PathBuf> {
    let real = tokio::fs::canonicalize(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    if !real.starts_with(dir) {
        bail!("refused: {why}");
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &Path) -> Fetcher {
        Fetcher::new(dir.to_str().unwrap(), "", 1 << 20, 8).unwrap()
    }

    async fn refusal(f: &Fetcher, uri: &str) -> String {
        format!("{:#}", f.fetch(uri).await.expect_err(uri))
    }

    #[tokio::test]
    async fn reads_what_is_inside_the_catalog() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("blobs")).unwrap();
        std::fs::write(d.path().join("blobs/a.jpg"), b"jpeg").unwrap();
        let f = local(d.path());
        assert_eq!(f.fetch("blobs/a.jpg").await.unwrap(), b"jpeg");
        assert_eq!(f.fetch("./blobs/./a.jpg").await.unwrap(), b"jpeg");
        let url = Url::from_file_path(d.path().join("blobs/a.jpg")).unwrap();
        assert_eq!(f.fetch(url.as_str()).await.unwrap(), b"jpeg");
    }

    #[tokio::test]
    async fn refuses_what_leaves_the_catalog_without_echoing_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("catalog");
        std::fs::create_dir_all(root.join("blobs")).unwrap();
        std::fs::write(d.path().join("secret.txt"), b"TOP-SECRET").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.txt"), root.join("blobs/link.jpg"))
            .unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("blobs/zero.jpg")).unwrap();
        let f = local(&root);
        for (uri, why) in [
            ("../../etc/passwd", "`..` leaves the catalog"),
            ("blobs/../../secret.txt", "`..` leaves the catalog"),
            ("/dev/zero", "absolute path"),
            ("/etc/hostname", "absolute path"),
            ("file:///etc/hostname", "only inside the catalog"),
            ("blobs/link.jpg", "leads out of the catalog"),
            ("blobs/zero.jpg", "leads out of the catalog"),
            (
                "s3://other-bucket/x.jpg",
                "bucket `other-bucket` is not the catalog's",
            ),
            ("ftp://example.com/x.jpg", "`ftp:` URLs are not read"),
        ] {
            let e = refusal(&f, uri).await;
            assert!(e.contains("refused") && e.contains(why), "{uri}: {e}");
            assert!(!e.contains("TOP-SECRET"), "{uri}: {e}");
        }
    }

    #[tokio::test]
    async fn special_files_are_refused_and_limits_hold_while_reading() {
        // /proc files report size 0 and /dev/zero never ends: read through an
        // allow-list (the only way to reach them), they are still refused
        // or cut at the limit.
        let f = Fetcher::new("/tmp", "file:///", 64, 4).unwrap();
        let e = refusal(&f, "file:///dev/zero").await;
        assert!(e.contains("not a regular file"), "{e}");
        let e = refusal(&f, "file:///proc/self/status").await;
        assert!(e.contains("more than images.max_bytes=64"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("big.jpg"), vec![0u8; 2048]).unwrap();
        let f = Fetcher::new(d.path().to_str().unwrap(), "", 1024, 4).unwrap();
        assert!(refusal(&f, "big.jpg").await.contains("2048 bytes, over"));
    }

    #[tokio::test]
    async fn refused_hosts_are_never_contacted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let d = tempfile::tempdir().unwrap();
        let f = local(d.path());
        for uri in [
            format!("https://127.0.0.1:{port}/x.jpg"),
            format!("http://127.0.0.1:{port}/x.jpg"),
        ] {
            let e = refusal(&f, &uri).await;
            assert!(e.contains("not contacted"), "{e}");
        }
        // A prefix admits only URLs under it, at a path boundary.
        let f = Fetcher::new(
            d.path().to_str().unwrap(),
            &format!("http://127.0.0.1:{port}/img"),
            1024,
            4,
        )
        .unwrap();
        let e = refusal(&f, &format!("http://127.0.0.1:{port}/imgs-elsewhere/x.jpg")).await;
        assert!(e.contains("not contacted"), "{e}");
        assert_eq!(
            listener.accept().map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::WouldBlock),
            "a refused URL reached the listener"
        );
    }

    #[tokio::test]
    async fn the_catalogs_bucket_is_allowed_and_others_only_by_prefix() {
        let f = Fetcher::new("s3://catalogs/nightly", "s3://shared-images/", 1024, 4).unwrap();
        assert_eq!(
            f.resolve("blobs/a.jpg").await.unwrap(),
            Target::Object {
                store: "s3://catalogs".into(),
                path: "nightly/blobs/a.jpg".into()
            }
        );
        assert!(f.resolve("s3://catalogs/elsewhere/a.jpg").await.is_ok());
        assert!(f.resolve("s3://shared-images/a.jpg").await.is_ok());
        let e = format!("{:#}", f.resolve("s3://other/a.jpg").await.unwrap_err());
        assert!(e.contains("bucket `other` is not the catalog's"), "{e}");
        let e = format!("{:#}", f.resolve("../a.jpg").await.unwrap_err());
        assert!(e.contains("`..` leaves the catalog"), "{e}");
        assert!(Fetcher::new("/tmp", "not a url", 1, 1).is_err());
    }

    #[tokio::test]
    async fn fetches_many_with_bounded_concurrency_in_any_order() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(d.path().join(format!("{i}.jpg")), format!("{i}")).unwrap();
        }
        let f = local(d.path());
        let mut got = f
            .fetch_all((0..50).map(|i| (i, format!("{i}.jpg"))).collect())
            .await;
        got.sort_by_key(|(i, _)| *i);
        for (i, r) in got {
            assert_eq!(r.unwrap(), format!("{i}").into_bytes());
        }
    }
}
