//! Reference sets and how listing images are matched against them: brands'
//! official photos and images of confirmed fakes, each an index of entries
//! and embeddings row for row; a listing image matches an entry when its
//! embedding is near enough (top-k cosine, `matching`) and the second, local
//! check agrees (`verify`). Plain buffers in, matches out: the scan, the SQL
//! functions and the cluster's executors call the same code, and where the
//! indexes are stored (Parquet, `dajia kb`) is the jobs crate's business.

use std::collections::HashSet;
use std::sync::Arc;

use crate::device::DeviceError;
use crate::risk::ImageMatchKind;

use super::{
    verify, DecodeLimits, Embedder, EmbedderKind, ImageError, ImageOps, Match, ReferenceSet,
};

/// What is known of one reference image.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub image_id: String,
    pub brand_id: Option<i64>,
    /// Listing the image came from (known fakes).
    pub listing_id: Option<i64>,
    /// Where it came from: brand_images, test_purchase or takedown.
    pub source: String,
    /// Its grey print for the second, local check of a match (`verify`);
    /// `None` in indexes written before it existed, whose matches then never
    /// count (rebuild them with `dajia kb`).
    pub print: Option<Vec<u8>>,
}

/// One reference set: entries and their embeddings, row for row.
#[derive(Debug, Clone)]
pub struct ImageIndex {
    pub kind: ImageMatchKind,
    pub embedder: EmbedderKind,
    pub entries: Vec<IndexEntry>,
    pub refs: ReferenceSet,
}

impl ImageIndex {
    pub fn new(kind: ImageMatchKind, embedder: EmbedderKind) -> Self {
        ImageIndex {
            kind,
            embedder,
            entries: Vec::new(),
            refs: ReferenceSet::new(embedder.dim()),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, image_id: &str) -> bool {
        self.entries.iter().any(|e| e.image_id == image_id)
    }

    pub fn push(&mut self, entry: IndexEntry, embedding: &[f32]) {
        self.refs.push(embedding);
        self.entries.push(entry);
    }

    /// The `k` nearest references of each query (row-major, `dim` floats each).
    pub fn search(
        &self,
        queries: &[f32],
        k: usize,
        ops: &dyn ImageOps,
    ) -> Result<Vec<Vec<Match>>, DeviceError> {
        ops.top_k(queries, &self.refs, k)
    }
}

/// A match of one image against a reference set.
#[derive(Debug, Clone, PartialEq)]
pub struct RefMatch {
    pub kind: ImageMatchKind,
    pub entry: IndexEntry,
    pub similarity: f32,
    /// Local agreement of the second check (`verify`), when run.
    pub agreement: Option<f32>,
}

/// When a near embedding counts as a match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchRules {
    /// Decode guards for the images embedded and printed.
    pub limits: DecodeLimits,
    /// Cosine similarity at or above which an image is a candidate copy.
    pub threshold: f32,
    /// Local agreement (0-1) a candidate must also reach (`verify`).
    pub verify_threshold: f32,
}

/// A reference image that could not be embedded because the machinery
/// failed (a model, the GPU), not the image: adding stops.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("embedding reference image {image_id}: {error}")]
pub struct AddError {
    pub image_id: String,
    pub error: ImageError,
}

/// The two reference sets, one embedder, and where top-k runs.
#[derive(Clone)]
pub struct References {
    pub embedder: Arc<dyn Embedder>,
    /// Top-k matching on the embedder's device.
    pub ops: Arc<dyn ImageOps>,
    pub official: ImageIndex,
    pub fakes: ImageIndex,
}

impl std::fmt::Debug for References {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("References")
            .field("embedder", &self.embedder.kind())
            .field("official", &self.official.len())
            .field("fakes", &self.fakes.len())
            .finish()
    }
}

impl References {
    /// Empty reference sets for `embedder`, matched with `ops`.
    pub fn new(embedder: Arc<dyn Embedder>, ops: Arc<dyn ImageOps>) -> Self {
        let kind = embedder.kind();
        References {
            embedder,
            ops,
            official: ImageIndex::new(ImageMatchKind::Official, kind),
            fakes: ImageIndex::new(ImageMatchKind::KnownFake, kind),
        }
    }

    pub fn index(&self, kind: ImageMatchKind) -> &ImageIndex {
        match kind {
            ImageMatchKind::Official => &self.official,
            ImageMatchKind::KnownFake => &self.fakes,
        }
    }

    fn index_mut(&mut self, kind: ImageMatchKind) -> &mut ImageIndex {
        match kind {
            ImageMatchKind::Official => &mut self.official,
            ImageMatchKind::KnownFake => &mut self.fakes,
        }
    }

    /// Embeds and adds reference images (`None` content is an empty image);
    /// an image already in the set is skipped. Known fakes that copy an
    /// official photo are left out: a counterfeiter reusing a brand's photo
    /// must not turn that photo into a "known fake" that authorised sellers
    /// match. Images that cannot be read are returned with their reasons.
    pub fn add(
        &mut self,
        kind: ImageMatchKind,
        rows: &[(IndexEntry, Option<Vec<u8>>)],
        rules: &MatchRules,
    ) -> Result<Vec<(String, ImageError)>, AddError> {
        let mut bad = Vec::new();
        let mut seen: HashSet<String> = self
            .index(kind)
            .entries
            .iter()
            .map(|e| e.image_id.clone())
            .collect();
        for chunk in rows.chunks(1024) {
            let contents: Vec<&[u8]> = chunk
                .iter()
                .map(|(_, c)| c.as_deref().unwrap_or(&[]))
                .collect();
            let embs = self.embedder.embed_batch(&contents, &rules.limits);
            for ((entry, content), emb) in chunk.iter().zip(embs) {
                if !seen.insert(entry.image_id.clone()) {
                    continue;
                }
                let v = match emb {
                    Ok(v) => v,
                    Err(error) if error.is_run_failure() => {
                        return Err(AddError {
                            image_id: entry.image_id.clone(),
                            error,
                        })
                    }
                    Err(e) => {
                        bad.push((entry.image_id.clone(), e));
                        continue;
                    }
                };
                if kind == ImageMatchKind::KnownFake {
                    let top = self
                        .official
                        .search(&v, 1, self.ops.as_ref())
                        .map_err(|e| AddError {
                            image_id: entry.image_id.clone(),
                            error: e.into(),
                        })?;
                    if top[0]
                        .first()
                        .is_some_and(|m| m.similarity >= rules.threshold)
                    {
                        continue;
                    }
                }
                // The print for the second check; the bytes decoded a moment
                // ago, so this cannot fail differently.
                let mut entry = entry.clone();
                entry.print = content
                    .as_deref()
                    .and_then(|c| verify::print_bytes(c, &rules.limits).ok());
                self.index_mut(kind).push(entry, &v);
            }
        }
        Ok(bad)
    }

    /// The `k` nearest references of each embedding in either set, best
    /// first, without threshold.
    pub fn nearest(&self, embeddings: &[f32], k: usize) -> Result<Vec<Vec<RefMatch>>, ImageError> {
        let dim = self.embedder.kind().dim();
        let n = embeddings.len() / dim;
        let mut out: Vec<Vec<RefMatch>> = vec![Vec::new(); n];
        for index in [&self.official, &self.fakes] {
            for (i, top) in index
                .search(embeddings, k, self.ops.as_ref())?
                .into_iter()
                .enumerate()
            {
                out[i].extend(top.into_iter().map(|m| RefMatch {
                    kind: index.kind,
                    entry: index.entries[m.index as usize].clone(),
                    similarity: m.similarity,
                    agreement: None,
                }));
            }
        }
        for v in &mut out {
            v.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            v.truncate(k);
        }
        Ok(out)
    }

    /// Decodes, embeds and matches a batch of images of listings: for each,
    /// its best match at or above the threshold in each set that also passes
    /// the second, local check (an image is not matched against entries of
    /// its own listing), or why it could not be read. The device failing
    /// fails every image of the batch (`ImageError::is_run_failure`).
    pub fn match_listing_images(
        &self,
        contents: &[&[u8]],
        listing_ids: &[Option<i64>],
        rules: &MatchRules,
    ) -> Vec<Result<Vec<RefMatch>, ImageError>> {
        let embs = self.embedder.embed_batch(contents, &rules.limits);
        let dim = self.embedder.kind().dim();
        let ok: Vec<usize> = (0..embs.len()).filter(|&i| embs[i].is_ok()).collect();
        let mut flat = Vec::with_capacity(ok.len() * dim);
        for &i in &ok {
            flat.extend_from_slice(embs[i].as_ref().expect("filtered to Ok"));
        }
        let mut out: Vec<Result<Vec<RefMatch>, ImageError>> =
            embs.into_iter().map(|e| e.map(|_| Vec::new())).collect();
        for index in [&self.official, &self.fakes] {
            // A listing's own images may be among the known fakes: ask for a
            // few more than one so that its own entries cannot crowd out
            // another listing's.
            let top = match index.search(&flat, 8, self.ops.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    let e = ImageError::Device(e);
                    return out.into_iter().map(|_| Err(e.clone())).collect();
                }
            };
            for (row, matches) in ok.iter().zip(top) {
                let found = best_verified(index, matches, contents[*row], listing_ids[*row], rules);
                if let (Some(m), Ok(v)) = (found, &mut out[*row]) {
                    v.push(m);
                }
            }
        }
        out
    }
}

/// The best of one query's candidates in `index` that reaches the
/// threshold, is not from the query's own listing and passes the local
/// check. The query's print is made once and only when a candidate needs
/// it (few do: the threshold is strict).
fn best_verified(
    index: &ImageIndex,
    candidates: Vec<Match>,
    content: &[u8],
    listing_id: Option<i64>,
    rules: &MatchRules,
) -> Option<RefMatch> {
    let mut query_print: Option<Option<Vec<u8>>> = None;
    candidates
        .into_iter()
        .filter(|m| m.similarity >= rules.threshold)
        .map(|m| (m, &index.entries[m.index as usize]))
        .filter(|(_, e)| e.listing_id.is_none() || e.listing_id != listing_id)
        .find_map(|(m, e)| {
            let q = query_print
                .get_or_insert_with(|| verify::print_bytes(content, &rules.limits).ok())
                .as_deref()?;
            let a = verify::agreement(q, e.print.as_deref()?);
            (a >= rules.verify_threshold).then(|| RefMatch {
                kind: index.kind,
                entry: e.clone(),
                similarity: m.similarity,
                agreement: Some(a),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use image::{Rgb, RgbImage};

    /// A textured scene with a striped product whose colour is `tone`.
    fn photo(seed: u32, tone: u8) -> Vec<u8> {
        let mut img = RgbImage::new(256, 256);
        for (x, y, p) in img.enumerate_pixels_mut() {
            let h = (x / 16 * 7 + y / 20 * 13 + seed) % 9;
            let v = (40 + h * 20 + (x + y) % 7) as u8;
            *p = Rgb([v, v / 2 + 60, 255 - v]);
            if (60..190).contains(&x) && (50..200).contains(&y) && (x * seed + y) / 9 % 2 == 0 {
                *p = Rgb([tone, 20, 250 - tone]);
            }
        }
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
            .encode_image(&img)
            .unwrap();
        out
    }

    fn entry(id: &str, listing_id: Option<i64>) -> IndexEntry {
        IndexEntry {
            image_id: id.into(),
            brand_id: Some(7),
            listing_id,
            source: "brand_images".into(),
            print: None,
        }
    }

    fn refs() -> (References, MatchRules) {
        let embedder = super::super::embed::load_on(
            EmbedderKind::Descriptor,
            std::path::Path::new("unused"),
            &Device::Cpu,
        )
        .unwrap();
        let rules = MatchRules {
            limits: DecodeLimits::default(),
            threshold: EmbedderKind::Descriptor.default_threshold(),
            verify_threshold: verify::DEFAULT_THRESHOLD,
        };
        (
            References::new(embedder, super::super::ops::for_device(&Device::Cpu)),
            rules,
        )
    }

    #[test]
    fn copies_match_others_do_not_and_bad_images_are_reasons() {
        let (mut r, rules) = refs();
        let (a, b) = (photo(3, 200), photo(11, 60));
        let bad = r
            .add(
                ImageMatchKind::Official,
                &[
                    (entry("a", None), Some(a.clone())),
                    (entry("a", None), Some(a.clone())),
                    (entry("junk", None), Some(b"not an image".to_vec())),
                ],
                &rules,
            )
            .unwrap();
        assert_eq!(r.official.len(), 1, "duplicates are added once");
        assert!(r.official.entries[0].print.is_some());
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "junk");
        assert!(
            matches!(bad[0].1, ImageError::NotAnImage(_)),
            "{:?}",
            bad[0].1
        );

        // A known fake that copies the official photo is left out; another
        // image is indexed.
        let unreadable = r
            .add(
                ImageMatchKind::KnownFake,
                &[
                    (entry("copy", Some(5)), Some(a.clone())),
                    (entry("fake", Some(5)), Some(b.clone())),
                ],
                &rules,
            )
            .unwrap();
        assert!(unreadable.is_empty());
        let ids: Vec<_> = r
            .fakes
            .entries
            .iter()
            .map(|e| e.image_id.as_str())
            .collect();
        assert_eq!(ids, ["fake"]);

        let other = photo(29, 120);
        let out = r.match_listing_images(
            &[&a, &b, &b, &other, b"\xff\xd8 truncated"],
            &[Some(1), Some(2), Some(5), Some(3), Some(4)],
            &rules,
        );
        let kinds = |i: usize| -> Vec<(ImageMatchKind, String)> {
            out[i]
                .as_ref()
                .unwrap()
                .iter()
                .map(|m| (m.kind, m.entry.image_id.clone()))
                .collect()
        };
        assert_eq!(kinds(0), [(ImageMatchKind::Official, "a".to_string())]);
        assert_eq!(kinds(1), [(ImageMatchKind::KnownFake, "fake".to_string())]);
        assert!(kinds(2).is_empty(), "not matched against its own listing");
        assert!(kinds(3).is_empty(), "{:?}", out[3]);
        assert!(out[4].is_err());
        for m in out[0].as_ref().unwrap() {
            assert!(m.similarity >= rules.threshold);
            assert!(m.agreement.unwrap() >= rules.verify_threshold);
        }

        // Without thresholds, the nearest of both sets, best first.
        let emb = r
            .embedder
            .embed_batch(&[&a], &rules.limits)
            .remove(0)
            .unwrap();
        let near = r.nearest(&emb, 2).unwrap();
        assert_eq!(near[0][0].entry.image_id, "a");
        assert_eq!(near[0].len(), 2);
        assert!(near[0][0].similarity >= near[0][1].similarity);
    }
}
