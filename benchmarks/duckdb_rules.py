#!/usr/bin/env python3
"""The scan's text/price/seller rules expressed in DuckDB SQL (regexp/LIKE over
the same Parquet catalog), as the peer of `dajia scan` in
benchmarks/scan_vs_duckdb.sh. DuckDB has no normalize_text, so it lowercases and
strips common separators with regexp_replace; that is the fair
plain-SQL equivalent, not a re-implementation of dajia's normaliser.

Usage: duckdb_rules.py CATALOG OUT_PARQUET  -> prints JSON {rows, seconds}
"""
import json
import sys
import time

import duckdb

REPLICA = r"(高仿|搞仿|gao仿|a货|超a|1:1|一比一|1比1|复刻|覆刻|原单|精仿|仿品|莆田纯原|莆田鞋|纯原|公司级|replica|山寨)"
CONTACT = r"(微信|威信|薇信|v信|vx|wx|\+v|qq|扣扣|企鹅|电话|联系)[\s:：号]*([a-z][a-z0-9_-]{5,19}|[0-9]{5,15})|1[3-9][0-9]{9}"

def main():
    catalog, out = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    t0 = time.time()
    con.execute(f"""
    CREATE TEMP TABLE aliases AS
      SELECT brand_id, name, min_price_cents, authorized_sellers, lower(a) AS alias
      FROM (SELECT *, unnest(list_append(aliases, name)) AS a FROM read_parquet('{catalog}/brands/*.parquet') WHERE protected)
      WHERE length(a) >= 2;
    CREATE TEMP TABLE closed AS SELECT * FROM read_parquet('{catalog}/sellers/*.parquet') WHERE status = 'closed' AND closed_reason = 'counterfeit';
    CREATE TEMP TABLE links AS
      SELECT s.seller_id, max(CASE WHEN s.id_number_hash = c.id_number_hash THEN 0.8 WHEN s.id_photo_hash = c.id_photo_hash THEN 0.7
                                   WHEN s.bank_account_hash = c.bank_account_hash THEN 0.7 WHEN s.phone_hash = c.phone_hash THEN 0.6
                                   WHEN s.device_hash = c.device_hash THEN 0.5 ELSE 0.15 END) AS w
      FROM read_parquet('{catalog}/sellers/*.parquet') s JOIN closed c
        ON s.seller_id <> c.seller_id AND (s.id_number_hash = c.id_number_hash OR s.id_photo_hash = c.id_photo_hash
           OR s.bank_account_hash = c.bank_account_hash OR s.phone_hash = c.phone_hash OR s.device_hash = c.device_hash
           OR s.address_hash = c.address_hash)
      GROUP BY s.seller_id;
    """)
    def esc(a):
        return "".join("\\" + c if c in ".^$*+?()[]{}|\\" else c for c in a).replace("'", "''")
    aliases = sorted({a for (a,) in con.execute("SELECT alias FROM aliases").fetchall()}, key=len, reverse=True)
    alias_re = "(" + "|".join(esc(a) for a in aliases) + ")"
    con.execute(f"""
    COPY (
      WITH l AS (
        SELECT listing_id, seller_id, price_cents,
               regexp_replace(lower(coalesce(title, '') || ' ' || coalesce(description, '')), '[\\s\\.\\*\\-·|/✨🔥]+', ' ', 'g') AS t
        FROM read_parquet('{catalog}/listings/*.parquet')),
      f AS (
        SELECT l.*, regexp_matches(t, '{REPLICA}') AS replica, regexp_matches(t, '{CONTACT}') AS contact,
               regexp_extract(t, '{alias_re}') AS alias
        FROM l),
      b AS (SELECT f.*, a.brand_id, a.min_price_cents, a.authorized_sellers FROM f LEFT JOIN (SELECT DISTINCT ON (alias) * FROM aliases) a ON f.alias = a.alias)
      SELECT b.listing_id, b.seller_id, b.brand_id,
             1 - (1 - CASE WHEN replica THEN 0.85 ELSE 0 END) * (1 - CASE WHEN contact THEN 0.75 ELSE 0 END)
               * (1 - CASE WHEN brand_id IS NOT NULL THEN 0.1 ELSE 0 END)
               * (1 - CASE WHEN brand_id IS NOT NULL AND NOT list_contains(authorized_sellers, b.seller_id) THEN 0.3 ELSE 0 END)
               * (1 - CASE WHEN price_cents < 0.5 * min_price_cents THEN 0.7 ELSE 0 END)
               * (1 - coalesce(k.w, 0)) AS score
      FROM b LEFT JOIN links k ON b.seller_id = k.seller_id
    ) TO '{out}' (FORMAT PARQUET);
    """)
    seconds = time.time() - t0
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    flagged = con.execute(f"SELECT count(*) FROM read_parquet('{out}') WHERE score >= 0.5").fetchone()[0]
    print(json.dumps({"rows": rows, "flagged": flagged, "seconds": seconds, "threads": int(threads), "duckdb": duckdb.__version__}))

if __name__ == "__main__":
    main()
