//! Table definitions: one function per table, each column with a doc string.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The logical type of a column, as the contract states it. `to_arrow` gives
/// the canonical Arrow type dajia writes; `accepts` the family it reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Int64,
    Float32,
    Float64,
    Boolean,
    Utf8,
    Binary,
    /// Timestamp in microseconds, UTC.
    Timestamp,
    ListUtf8,
    ListInt64,
    /// `List<Struct<code Utf8, detail Utf8, weight Float32>>`.
    Reasons,
    /// `List<Struct<attribute Utf8, value_hash Utf8, sellers Int64>>`: the
    /// identity values that tie a seller cluster together.
    Evidence,
}

impl Ty {
    pub fn to_arrow(&self) -> DataType {
        match self {
            Ty::Int64 => DataType::Int64,
            Ty::Float32 => DataType::Float32,
            Ty::Float64 => DataType::Float64,
            Ty::Boolean => DataType::Boolean,
            Ty::Utf8 => DataType::Utf8,
            Ty::Binary => DataType::Binary,
            Ty::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Ty::ListUtf8 => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            Ty::ListInt64 => DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            Ty::Reasons => DataType::List(Arc::new(Field::new_list_field(
                DataType::Struct(reason_fields()),
                true,
            ))),
            Ty::Evidence => DataType::List(Arc::new(Field::new_list_field(
                DataType::Struct(evidence_fields()),
                true,
            ))),
        }
    }

    /// Does a column stored as `dt` read as this type without loss?
    pub fn accepts(&self, dt: &DataType) -> bool {
        use DataType as D;
        let is_str = |d: &D| matches!(d, D::Utf8 | D::LargeUtf8 | D::Utf8View);
        let is_list_of = |d: &D, inner: &dyn Fn(&D) -> bool| match d {
            D::List(f) | D::LargeList(f) | D::ListView(f) | D::LargeListView(f) => {
                inner(f.data_type())
            }
            _ => false,
        };
        let is_int = |d: &D| {
            matches!(
                d,
                D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32
            )
        };
        match self {
            Ty::Int64 => is_int(dt),
            Ty::Float32 | Ty::Float64 => matches!(dt, D::Float16 | D::Float32 | D::Float64),
            Ty::Boolean => matches!(dt, D::Boolean),
            Ty::Utf8 => is_str(dt),
            Ty::Binary => matches!(dt, D::Binary | D::LargeBinary | D::BinaryView),
            Ty::Timestamp => matches!(dt, D::Timestamp(_, _)),
            Ty::ListUtf8 => is_list_of(dt, &is_str),
            Ty::ListInt64 => is_list_of(dt, &is_int),
            Ty::Reasons | Ty::Evidence => is_list_of(dt, &|d| matches!(d, D::Struct(_))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Ty::Int64 => "Int64",
            Ty::Float32 => "Float32",
            Ty::Float64 => "Float64",
            Ty::Boolean => "Boolean",
            Ty::Utf8 => "Utf8",
            Ty::Binary => "Binary",
            Ty::Timestamp => "Timestamp(µs, UTC)",
            Ty::ListUtf8 => "List<Utf8>",
            Ty::ListInt64 => "List<Int64>",
            Ty::Reasons => "List<Struct<code Utf8, detail Utf8, weight Float32>>",
            Ty::Evidence => "List<Struct<attribute Utf8, value_hash Utf8, sellers Int64>>",
        }
    }
}

/// The identity attributes of `sellers`, hashed by the platform, in column
/// order: what the "same-person" linkage compares.
pub const IDENTITY_ATTRIBUTES: &[&str] = &[
    "id_name_hash",
    "id_number_hash",
    "id_photo_hash",
    "phone_hash",
    "device_hash",
    "bank_account_hash",
    "address_hash",
];

/// Identity attributes that tie sellers together on their own ("hard"
/// links: one person's document, bank account or phone). The others
/// (device, address, name) are "soft": a pair of sellers is linked only when
/// it shares at least two soft values (an office, a family, a common name
/// share one).
pub const HARD_IDENTITY_ATTRIBUTES: &[&str] = &[
    "id_number_hash",
    "id_photo_hash",
    "bank_account_hash",
    "phone_hash",
];

/// Fields of one piece of cluster evidence: an identity attribute, the
/// (platform-hashed) value and how many sellers share it.
pub fn evidence_fields() -> Fields {
    Fields::from(vec![
        Field::new("attribute", DataType::Utf8, false),
        Field::new("value_hash", DataType::Utf8, false),
        Field::new("sellers", DataType::Int64, false),
    ])
}

/// Fields of one reason: a code, a human-readable detail and its weight.
pub fn reason_fields() -> Fields {
    Fields::from(vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("weight", DataType::Float32, false),
    ])
}

#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: &'static str,
    pub ty: Ty,
    pub nullable: bool,
    /// A required column must exist in every file; optional ones may be absent.
    pub required: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Read from a catalog.
    Input,
    /// Written by dajia under an output prefix (Delta Lake, partitioned by `dt`).
    Output,
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: &'static str,
    pub kind: TableKind,
    pub doc: &'static str,
    pub columns: Vec<ColumnDef>,
}

impl TableDef {
    /// The canonical Arrow schema, with each column's doc in field metadata.
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                Field::new(c.name, c.ty.to_arrow(), c.nullable).with_metadata(
                    [("doc".to_string(), c.doc.to_string())]
                        .into_iter()
                        .collect(),
                )
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn col(name: &'static str, ty: Ty, nullable: bool, doc: &'static str) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        nullable,
        required: true,
        doc,
    }
}

fn opt(name: &'static str, ty: Ty, doc: &'static str) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        nullable: true,
        required: false,
        doc,
    }
}

/// Every table of the contract, inputs first.
pub fn tables() -> Vec<TableDef> {
    use TableKind::*;
    use Ty::*;
    vec![
        TableDef {
            name: "listings",
            kind: Input,
            doc: "One row per product listing of the snapshot (hive partition dt=YYYY-MM-DD optional).",
            columns: vec![
                col("listing_id", Int64, false, "Platform-wide listing id."),
                col("seller_id", Int64, false, "The seller offering the listing (sellers.seller_id)."),
                col("title", Utf8, false, "Listing title as the seller wrote it."),
                opt("description", Utf8, "Free-text description."),
                col("category", Utf8, true, "Category path or name, e.g. 箱包/女包."),
                opt("brand", Utf8, "Brand the seller declared (may be missing or wrong)."),
                col("price_cents", Int64, true, "Price in minor units (fen for CNY)."),
                opt("currency", Utf8, "ISO 4217 code, e.g. CNY."),
                opt("ship_from", Utf8, "Shipping region, e.g. 福建省莆田市."),
                opt("image_ids", ListUtf8, "Images of the listing (images.image_id)."),
                opt("updated_at", Timestamp, "Last modification of the listing."),
            ],
        },
        TableDef {
            name: "images",
            kind: Input,
            doc: "Listing images: bytes inline or an object-store key.",
            columns: vec![
                col("image_id", Utf8, false, "Image id."),
                col("listing_id", Int64, true, "Listing the image belongs to."),
                col("content", Binary, true, "JPEG/PNG/WebP bytes; null when `uri` is set."),
                opt("uri", Utf8, "Object-store key of the image when `content` is null."),
            ],
        },
        TableDef {
            name: "sellers",
            kind: Input,
            doc: "Seller accounts with platform-hashed identity attributes.",
            columns: vec![
                col("seller_id", Int64, false, "Seller id."),
                opt("registered_at", Timestamp, "Account registration time."),
                col("status", Utf8, true, "active or closed."),
                opt("closed_reason", Utf8, "Why a closed account was closed, e.g. counterfeit."),
                opt("closed_at", Timestamp, "When a closed account was closed."),
                opt("region", Utf8, "Seller's region."),
                opt("id_name_hash", Utf8, "Hash of the name on the identity document."),
                opt("id_number_hash", Utf8, "Hash of the identity document number."),
                opt("id_photo_hash", Utf8, "Perceptual hash of the identity photo."),
                opt("phone_hash", Utf8, "Hash of the registered phone number."),
                opt("device_hash", Utf8, "Hash of the device fingerprint."),
                opt("bank_account_hash", Utf8, "Hash of the settlement bank account."),
                opt("address_hash", Utf8, "Hash of the return/shipping address."),
            ],
        },
        TableDef {
            name: "brands",
            kind: Input,
            doc: "The brand knowledge base.",
            columns: vec![
                col("brand_id", Int64, false, "Brand id."),
                col("name", Utf8, false, "Canonical brand name."),
                opt("aliases", ListUtf8, "Other scripts, translations, nicknames, misspellings."),
                opt("categories", ListUtf8, "Categories the brand sells in."),
                opt("min_price_cents", Int64, "Lowest plausible genuine price (minor units)."),
                col("protected", Boolean, true, "Brand has registered IP protection on the platform."),
                opt("authorized_sellers", ListInt64, "Sellers authorised to sell the brand."),
            ],
        },
        TableDef {
            name: "brand_images",
            kind: Input,
            doc: "Official product photos and logos of brands.",
            columns: vec![
                col("brand_id", Int64, false, "Brand id."),
                col("image_id", Utf8, false, "Image id."),
                col("content", Binary, true, "Image bytes."),
            ],
        },
        TableDef {
            name: "test_purchases",
            kind: Input,
            doc: "Optional labels: results of test purchases.",
            columns: vec![
                col("listing_id", Int64, false, "Listing bought."),
                opt("purchased_at", Timestamp, "Purchase time."),
                col("verdict", Utf8, false, "counterfeit or genuine."),
            ],
        },
        TableDef {
            name: "complaints",
            kind: Input,
            doc: "Optional labels: rights-holder complaints.",
            columns: vec![
                col("complaint_id", Int64, false, "Complaint id."),
                col("listing_id", Int64, false, "Listing complained about."),
                opt("brand_id", Int64, "Brand of the rights holder."),
                opt("filed_at", Timestamp, "Filing time."),
                opt("resolved_at", Timestamp, "Resolution time."),
                opt("outcome", Utf8, "Outcome of the complaint."),
            ],
        },
        TableDef {
            name: "orders",
            kind: Input,
            doc: "Optional sales: what listings sold, for estimating what a seller network sold (leads).",
            columns: vec![
                col("order_id", Int64, false, "Order id."),
                col("listing_id", Int64, false, "Listing sold."),
                col("seller_id", Int64, false, "Seller of the listing."),
                col("quantity", Int64, true, "Units sold."),
                col("amount_cents", Int64, false, "Order amount in minor units (fen for CNY)."),
                col("ordered_at", Timestamp, false, "Order time."),
                opt("ship_to_region", Utf8, "Buyer's region."),
            ],
        },
        TableDef {
            name: "risk_scores",
            kind: Output,
            doc: "One row per scanned listing and date: score, action and reasons (Delta Lake, partition dt).",
            columns: vec![
                col("listing_id", Int64, false, "Listing scanned."),
                col("seller_id", Int64, false, "Its seller."),
                col("score", Float32, false, "Risk in [0,1]: noisy-OR of the reason weights."),
                col("action", Utf8, false, "allow, review or takedown (thresholds in README)."),
                col("reasons", Reasons, false, "Signals that fired: code, human-readable detail, weight."),
                col("brand_id", Int64, true, "Brand the listing is about, when one was found."),
                col("model_version", Utf8, false, "Version of the rules and weights that scored it."),
                col("run_id", Utf8, true, "The scan run that wrote the row (its manifest: runs/RUN_ID.json); null in partitions written before runs were recorded."),
                col("dt", Utf8, false, "Snapshot date YYYY-MM-DD (partition column)."),
            ],
        },
        TableDef {
            name: "rejects",
            kind: Output,
            doc: "Inputs that could not be processed, with the reason (Delta Lake, partition dt).",
            columns: vec![
                col("table_name", Utf8, false, "Input table of the bad input."),
                col("file", Utf8, true, "File it came from, when known."),
                col("row_key", Utf8, true, "Key of the bad row (e.g. listing_id), when readable."),
                col("reason", Utf8, false, "Why it was rejected."),
                col("run_id", Utf8, true, "The scan run that wrote the row, as in risk_scores."),
                col("dt", Utf8, false, "Snapshot date YYYY-MM-DD (partition column)."),
            ],
        },
        TableDef {
            name: "seller_clusters",
            kind: Output,
            doc: "Sellers linked into one network by shared identity values, from `dajia link` (Delta Lake, partition dt); sellers linked to nobody have no row.",
            columns: vec![
                col("seller_id", Int64, false, "A seller in a cluster of two or more."),
                col("cluster_id", Int64, false, "The cluster: its smallest seller_id."),
                col("cluster_size", Int64, false, "Sellers in the cluster."),
                col("closed_members", Int64, false, "Members closed for counterfeiting."),
                col("last_closed_at", Timestamp, true, "When the cluster's latest member closed for counterfeiting was closed, when known."),
                col("evidence", Evidence, false, "The identity values that tie the cluster together (the same for every member)."),
                col("path_attributes", ListUtf8, true, "The strongest chain of links from this seller to a member closed for counterfeiting: the attributes of each step (`a+b` when a step is two soft values); null without such a member."),
                col("path_sellers", ListInt64, true, "The sellers of each step of that chain; the last one is closed for counterfeiting."),
                col("run_id", Utf8, true, "The `dajia link` run that wrote the row."),
                col("dt", Utf8, false, "Date YYYY-MM-DD (partition column)."),
            ],
        },
        TableDef {
            name: "leads",
            kind: Output,
            doc: "Seller clusters whose estimated counterfeit sales pass a threshold, per region, for law enforcement; from `dajia leads` (Delta Lake, partition dt).",
            columns: vec![
                col("cluster_id", Int64, false, "The seller cluster (seller_clusters.cluster_id)."),
                col("region", Utf8, false, "Region of the cluster's sellers (most of them)."),
                col("sellers", ListInt64, false, "Members of the cluster."),
                col("listings", Int64, false, "Listings of the members with counterfeit evidence."),
                col("estimated_counterfeit_sales_cents", Int64, false, "Orders of the members' listings, each weighted by its counterfeit evidence (a confirmed test purchase counts fully, a genuine verdict not at all, otherwise the listing's risk score)."),
                col("confirmed_purchases", Int64, false, "Test purchases of the members' listings judged counterfeit."),
                col("evidence", Utf8, false, "The evidence pack as JSON: linking values, members, top listings with their reasons, verdicts, sales by month."),
                col("rank", Int64, false, "Rank within the region by estimated sales, 1 first."),
                col("run_id", Utf8, true, "The `dajia leads` run that wrote the row."),
                col("dt", Utf8, false, "Date YYYY-MM-DD (partition column)."),
            ],
        },
        TableDef {
            name: "purchase_plan",
            kind: Output,
            doc: "Listings chosen for test purchases under a budget; from `dajia sample` (Delta Lake, partition dt).",
            columns: vec![
                col("listing_id", Int64, false, "Listing to buy."),
                col("seller_id", Int64, false, "Its seller."),
                col("category", Utf8, true, "Its category."),
                col("brand_id", Int64, true, "The brand the scan found (risk_scores.brand_id)."),
                col("region", Utf8, true, "The seller's region."),
                col("why", Utf8, false, "exploit (highest expected counterfeit rate and sales), explore (Thompson sampling over category x brand x region), or random (a simple random sample of the eligible listings)."),
                col("inclusion_probability", Float64, true, "Probability the listing was chosen: n/N for the random slice, 1 for exploit (chosen deterministically from the scores); null for explore (adaptive draws)."),
                col("expected_counterfeit", Float32, false, "The night's risk score: the model's probability that a purchase finds a counterfeit."),
                col("run_id", Utf8, true, "The `dajia sample` run that wrote the row."),
                col("dt", Utf8, false, "Date YYYY-MM-DD (partition column)."),
            ],
        },
    ]
}

/// One table by name.
pub fn table(name: &str) -> Option<TableDef> {
    tables().into_iter().find(|t| t.name == name)
}
