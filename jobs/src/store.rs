//! Object stores behind catalog URLs. `s3://BUCKET/PREFIX` is read with
//! object_store's S3 client configured from the standard AWS environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT` for S3-compatible servers, `AWS_ALLOW_HTTP`),
//! the same variables Ballista's executors read. Credentials are never
//! printed or logged: errors name the bucket and key only.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::execution::context::SessionContext;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use url::Url;

/// Whether `uri` names an object store rather than a local path.
pub fn is_s3(uri: &str) -> bool {
    uri.starts_with("s3://")
}

/// The bucket's URL (`s3://BUCKET`) and the key prefix of an `s3://` URI.
pub fn split_s3(uri: &str) -> Result<(Url, String)> {
    let url = Url::parse(uri).with_context(|| format!("`{uri}` is not a URL"))?;
    let Some(bucket) = url.host_str().filter(|b| !b.is_empty()) else {
        bail!("`{uri}` names no bucket (s3://BUCKET/PREFIX)");
    };
    let bucket_url = Url::parse(&format!("s3://{bucket}"))?;
    Ok((bucket_url, url.path().trim_matches('/').to_string()))
}

/// An S3 client for the bucket of `bucket_url`, from the environment.
pub fn s3_store(bucket_url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let store = AmazonS3Builder::from_env()
        .with_url(bucket_url.as_str())
        .build()
        .with_context(|| format!("configuring S3 access to {bucket_url}"))?;
    Ok(Arc::new(store))
}

/// Make `uri`'s bucket readable by `ctx`, unless its object-store registry
/// already serves it (a cluster session's registry builds S3 clients itself).
pub fn register(ctx: &SessionContext, uri: &str) -> Result<()> {
    if !is_s3(uri) {
        return Ok(());
    }
    let (bucket, _) = split_s3(uri)?;
    let key = datafusion::execution::object_store::ObjectStoreUrl::parse(bucket.as_str())?;
    if ctx.runtime_env().object_store(&key).is_err() {
        ctx.register_object_store(&bucket, s3_store(&bucket)?);
    }
    Ok(())
}
