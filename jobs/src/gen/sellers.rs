//! Sellers and the "same-person" model of the seed report: sellers closed for
//! counterfeiting come back under new accounts that share identity attributes
//! (one person, several forged ID cards with the same name and photo; the
//! same phone, device or bank account).

use rand::seq::IndexedRandom;
use rand::Rng;

use dajia_schemas::IDENTITY_ATTRIBUTES as ATTRS;

/// Attribute sets one account of a ring shares with the account before it
/// in the chain: one hard attribute, or two soft ones (a single soft value,
/// an address or a device, is not enough for `dajia link`).
const LINK_PATTERNS: &[(&str, &[&str])] = &[
    (
        "forged_id_same_name_and_photo",
        &["id_name_hash", "id_photo_hash"],
    ),
    ("same_phone", &["phone_hash"]),
    ("same_phone_and_device", &["phone_hash", "device_hash"]),
    ("same_bank_account", &["bank_account_hash"]),
    ("same_id_number", &["id_number_hash"]),
    ("same_device_and_address", &["device_hash", "address_hash"]),
    ("same_name_and_address", &["id_name_hash", "address_hash"]),
];

/// Accounts sharing each hub value (a logistics hub's address, a default
/// device id): more than `scan.max_sellers_per_identity` (50), so that
/// linking them would join strangers.
const HUB_SELLERS: std::ops::RangeInclusive<usize> = 80..=400;

pub struct Seller {
    pub id: i64,
    pub status: &'static str,
    pub closed_reason: Option<&'static str>,
    pub region: &'static str,
    pub attrs: [Option<String>; 7],
    pub registered_days_ago: i64,
    /// Days before the snapshot a closed account was closed.
    pub closed_days_ago: Option<i64>,
}

/// What a seller is in the generated world (`ground_truth/sellers`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    Flagship,
    Regular,
    /// Closed for counterfeiting: the origin of a ring.
    ClosedCounterfeiter,
    ClosedOther,
    /// An account of a closed counterfeiter's ring, `hops` links away.
    Relapsed,
    /// Benign, shares only an address with a closed counterfeiter.
    AddressSharer,
    /// Benign, shares a hub value with hundreds of strangers.
    HubMember,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Flagship => "flagship",
            Role::Regular => "regular",
            Role::ClosedCounterfeiter => "closed_counterfeiter",
            Role::ClosedOther => "closed_other",
            Role::Relapsed => "relapsed",
            Role::AddressSharer => "address_sharer",
            Role::HubMember => "hub_member",
        }
    }
}

/// The truth about one seller.
#[derive(Debug, Clone)]
pub struct Truth {
    pub role: Role,
    /// The closed counterfeiter whose ring the seller is in (itself for the
    /// closed one).
    pub network: Option<i64>,
    /// Links from the closed counterfeiter along the ring's chain.
    pub hops: Option<i64>,
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
    /// The truth about each seller, by position in `sellers`.
    pub truth: Vec<Truth>,
}

impl SellerPlan {
    pub fn count(&self) -> usize {
        self.sellers.len()
    }
}

fn hash(rng: &mut impl Rng) -> String {
    format!("{:016x}", rng.random::<u64>())
}

pub fn plan(listings: usize, sellers: Option<usize>, rng: &mut impl Rng) -> SellerPlan {
    let n = sellers.unwrap_or(listings / 40).max(200);
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
            closed_days_ago: None,
        })
        .collect();
    let mut truth: Vec<Truth> = (0..n)
        .map(|i| Truth {
            role: if i < n_flagship {
                Role::Flagship
            } else {
                Role::Regular
            },
            network: None,
            hops: None,
        })
        .collect();
    let flagship: Vec<i64> = (1..=n_flagship as i64).collect();
    let closed_lo = n_flagship;
    let closed_hi = n_flagship + n_closed;
    for (s, t) in sellers[closed_lo..closed_hi]
        .iter_mut()
        .zip(&mut truth[closed_lo..closed_hi])
    {
        s.status = "closed";
        s.closed_reason = Some("counterfeit");
        s.closed_days_ago = Some(rng.random_range(30..400));
        *t = Truth {
            role: Role::ClosedCounterfeiter,
            network: Some(s.id),
            hops: Some(0),
        };
    }
    // A few sellers closed for other reasons: linkage must not fire on them.
    for (s, t) in sellers[closed_hi..closed_hi + n_closed / 2]
        .iter_mut()
        .zip(&mut truth[closed_hi..closed_hi + n_closed / 2])
    {
        s.status = "closed";
        s.closed_reason = Some("inactive");
        s.closed_days_ago = Some(rng.random_range(30..400));
        t.role = Role::ClosedOther;
    }
    let first_free = closed_hi + n_closed / 2;
    let mut reopeners = Vec::new();
    let mut address_sharers = Vec::new();
    let mut next = first_free;
    // Each closed counterfeiter comes back as a ring of 1..=9 accounts (2 to
    // 10 with the closed one), each linked to an earlier account of the ring
    // (mostly the one before it, so rings are chains several hops long) by a
    // pattern other than the previous step's.
    let room = n.saturating_sub(first_free) / 2;
    for c in closed_lo..closed_hi {
        let mut ring = vec![c];
        let size = rng
            .random_range(1..=9)
            .min(room.saturating_sub(next - first_free));
        let mut last_pattern = usize::MAX;
        for _ in 0..size {
            let from = if rng.random_bool(0.8) {
                *ring.last().unwrap()
            } else {
                *ring.choose(rng).unwrap()
            };
            let mut k = rng.random_range(0..LINK_PATTERNS.len());
            if k == last_pattern {
                k = (k + 1) % LINK_PATTERNS.len();
            }
            last_pattern = k;
            let (how, shared) = LINK_PATTERNS[k];
            for a in shared {
                let i = ATTRS.iter().position(|x| x == a).unwrap();
                sellers[next].attrs[i] = sellers[from].attrs[i].clone();
            }
            sellers[next].registered_days_ago = rng.random_range(1..60);
            let hops = truth[from].hops.unwrap_or(0) + 1;
            truth[next] = Truth {
                role: Role::Relapsed,
                network: Some(sellers[c].id),
                hops: Some(hops),
            };
            reopeners.push((sellers[next].id, how));
            ring.push(next);
            next += 1;
        }
        if c % 3 == 0 && next < n {
            sellers[next].attrs[6] = sellers[c].attrs[6].clone();
            truth[next].role = Role::AddressSharer;
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
    let regular: Vec<i64> = (next as i64 + 1..=n as i64).collect();
    // Hub values among the benign sellers: addresses (logistics hubs) and
    // default device ids, each shared by hundreds of strangers, some of
    // whom share two of them; three per 100,000 sellers, at least three.
    let hub_size = (regular.len() / 3).clamp(*HUB_SELLERS.start(), *HUB_SELLERS.end());
    let sets = (n / 100_000).max(1);
    let hubs: Vec<(&str, String)> = (0..sets)
        .flat_map(|k| {
            let tag = if k == 0 {
                String::new()
            } else {
                format!("-{k}")
            };
            [
                ("address_hash", format!("hub-address-1{tag}")),
                ("address_hash", format!("hub-address-2{tag}")),
                ("device_hash", format!("default-device{tag}")),
            ]
        })
        .collect();
    if regular.len() >= hub_size {
        for (attr, value) in hubs {
            let i = ATTRS.iter().position(|x| *x == attr).unwrap();
            for id in regular.choose_multiple(rng, hub_size) {
                let k = (*id - 1) as usize;
                sellers[k].attrs[i] = Some(value.clone());
                truth[k].role = Role::HubMember;
            }
        }
    }
    SellerPlan {
        sellers,
        flagship,
        regular,
        reopeners,
        address_sharers,
        truth,
    }
}
