//! Sellers and the "same-person" model of the seed report: sellers closed for
//! counterfeiting come back under new accounts that share identity attributes
//! (one person, several forged ID cards with the same name and photo; the
//! same phone, device or bank account).

use rand::seq::IndexedRandom;
use rand::Rng;

use dajia_schemas::IDENTITY_ATTRIBUTES as ATTRS;

/// Attribute sets a reopened account shares with its closed original.
const REOPEN_PATTERNS: &[(&str, &[&str])] = &[
    (
        "forged_id_same_name_and_photo",
        &["id_name_hash", "id_photo_hash"],
    ),
    ("same_phone_and_device", &["phone_hash", "device_hash"]),
    ("same_bank_account", &["bank_account_hash"]),
    ("same_id_number", &["id_number_hash"]),
    ("same_device_and_address", &["device_hash", "address_hash"]),
];

pub struct Seller {
    pub id: i64,
    pub status: &'static str,
    pub closed_reason: Option<&'static str>,
    pub region: &'static str,
    pub attrs: [Option<String>; 7],
    pub registered_days_ago: i64,
}

pub struct SellerPlan {
    pub sellers: Vec<Seller>,
    /// Official and authorised stores.
    pub flagship: Vec<i64>,
    /// Ordinary active sellers.
    pub regular: Vec<i64>,
    /// New accounts of closed counterfeiters, with how they are linked.
    pub reopeners: Vec<(i64, &'static str)>,
    /// Benign sellers that share only an address with a closed counterfeiter.
    pub address_sharers: Vec<i64>,
}

impl SellerPlan {
    pub fn count(&self) -> usize {
        self.sellers.len()
    }
}

fn hash(rng: &mut impl Rng) -> String {
    format!("{:016x}", rng.random::<u64>())
}

pub fn plan(listings: usize, rng: &mut impl Rng) -> SellerPlan {
    let n = (listings / 40).max(200);
    let n_flagship = (n / 20).max(40);
    let n_closed = (n / 30).max(5);
    let regions = [
        "浙江省",
        "广东省",
        "福建省",
        "江苏省",
        "上海市",
        "北京市",
        "山东省",
    ];
    let mut sellers: Vec<Seller> = (1..=n as i64)
        .map(|id| Seller {
            id,
            status: "active",
            closed_reason: None,
            region: regions.choose(rng).unwrap(),
            attrs: std::array::from_fn(|_| Some(hash(rng))),
            registered_days_ago: rng.random_range(1..3000),
        })
        .collect();
    let flagship: Vec<i64> = (1..=n_flagship as i64).collect();
    let closed_lo = n_flagship;
    let closed_hi = n_flagship + n_closed;
    for s in &mut sellers[closed_lo..closed_hi] {
        s.status = "closed";
        s.closed_reason = Some("counterfeit");
    }
    // A few sellers closed for other reasons: linkage must not fire on them.
    for s in &mut sellers[closed_hi..closed_hi + n_closed / 2] {
        s.status = "closed";
        s.closed_reason = Some("inactive");
    }
    let first_free = closed_hi + n_closed / 2;
    let mut reopeners = Vec::new();
    let mut address_sharers = Vec::new();
    let mut next = first_free;
    for c in closed_lo..closed_hi {
        let k = rng.random_range(1..=2);
        for _ in 0..k {
            let (how, shared) = REOPEN_PATTERNS.choose(rng).unwrap();
            for a in *shared {
                let i = ATTRS.iter().position(|x| x == a).unwrap();
                sellers[next].attrs[i] = sellers[c].attrs[i].clone();
            }
            sellers[next].registered_days_ago = rng.random_range(1..60);
            reopeners.push((sellers[next].id, *how));
            next += 1;
        }
        if c % 3 == 0 {
            sellers[next].attrs[6] = sellers[c].attrs[6].clone();
            address_sharers.push(sellers[next].id);
            next += 1;
        }
    }
    // Missing attributes happen (older accounts): null some at random.
    for s in sellers[next..].iter_mut() {
        if rng.random_bool(0.1) {
            let i = rng.random_range(0..7);
            s.attrs[i] = None;
        }
    }
    let regular = (next as i64 + 1..=n as i64).collect();
    SellerPlan {
        sellers,
        flagship,
        regular,
        reopeners,
        address_sharers,
    }
}
