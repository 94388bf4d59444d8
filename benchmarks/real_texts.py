#!/usr/bin/env python3
"""Listings made of real text only, for `benchmarks/text_instructions.sh`.

The benchmark catalog's texts come from `dajia gen`'s templates; real
titles and real spam hold what the generator does not (full-width
punctuation, emoji, substituted characters), and the text path's cost on
them differs. Each line: a real product title from jobs/data; its
description is a real spam message (30%), another real title (30%) or
empty. Fixed seed, so the file is the same on every machine.

    usage: benchmarks/real_texts.py OUT.tsv [LISTINGS] [SEED]
"""
import random
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "jobs" / "data"


def column(path: Path, name: str) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    at = lines[0].split("\t").index(name)
    out = []
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) > at and fields[at].strip():
            out.append(fields[at].strip())
    return out


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    titles = column(DATA / "product_titles_train.tsv", "title")
    spam = column(DATA / "spam_variant_pairs_train.tsv", "raw")
    with out.open("w", encoding="utf-8") as f:
        f.write("title\tdescription\n")
        for _ in range(n):
            draw = rng.random()
            if draw < 0.3:
                description = rng.choice(spam)
            elif draw < 0.6:
                description = rng.choice(titles)
            else:
                description = ""
            f.write(f"{rng.choice(titles)}\t{description}\n")
    print(f"{n} listings of real text in {out}")


if __name__ == "__main__":
    main()
