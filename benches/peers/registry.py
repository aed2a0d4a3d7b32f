#!/usr/bin/env python3
"""A larger city for the scale benchmarks: copies a rule set and replaces its grid cells by N
cells (default 10,000), spread over the same streets in proportion to their populations (each
street's population split evenly among its cells), so that the city, its districts and streets,
their populations and hence `vigil gen`'s event volumes stay those of the default city. With
`--score-grid`, the grid level is scored too (`evaluate_region_levels`) and the state budget
raised to `--state-mib` (the default 1024 MiB does not hold 10,000 scored cells).

Usage: python3 benches/peers/registry.py --out DIR [--rules rules] [--grids 10000] [--score-grid]
                                          [--state-mib 2048]
Then: python3 benches/peers/run.py --rules DIR --work /tmp/peers10k --volumes 1
Standard library only; the same arguments give the same bytes.
"""
import argparse, csv, re, shutil
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", default=str(Path(__file__).resolve().parent.parent.parent / "rules"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--grids", type=int, default=10000)
    ap.add_argument("--score-grid", action="store_true")
    ap.add_argument("--state-mib", type=int, default=2048)
    a = ap.parse_args()
    src, out = Path(a.rules), Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    rows = list(csv.DictReader(open(src / "regions.csv", newline="", encoding="utf-8")))
    kept = [r for r in rows if r["level"] != "grid"]
    streets = [r for r in rows if r["level"] == "street"]
    total = sum(int(s["population"]) for s in streets)
    cells = [max(1, round(a.grids * int(s["population"]) / total)) for s in streets]
    # Largest remainders would be fairer; one cell more or less, street by street in order,
    # reaches exactly --grids and is easy to repeat.
    diff, i = a.grids - sum(cells), 0
    while diff:
        k, step = i % len(cells), (1 if diff > 0 else -1)
        if cells[k] + step >= 1:
            cells[k] += step
            diff -= step
        i += 1
    if max(cells) > 999:
        raise SystemExit("more than 999 cells in a street: the 3-digit cell codes would not do")
    grid = []
    for s, n in zip(streets, cells):
        pop = int(s["population"])
        for g in range(n):
            grid.append({"code": f"{s['code']}{g + 1:03d}", "parent": s["code"], "level": "grid",
                         "name": f"{s['name']}第{g + 1}网格", "population": str(pop // n + (1 if g < pop % n else 0))})
    with open(out / "regions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["code", "parent", "level", "name", "population"], lineterminator="\n")
        w.writeheader()
        w.writerows(kept + grid)
    if a.score_grid:
        text = (out / "ruleset.toml").read_text(encoding="utf-8")
        text = re.sub(r"^evaluate_region_levels = .*$", 'evaluate_region_levels = ["city", "district", "street", "grid"]',
                      text, count=1, flags=re.M)
        text = text.replace("[ruleset]\n", f"[ruleset]\nmax_state_mib = {a.state_mib}\n", 1)
        (out / "ruleset.toml").write_text(text, encoding="utf-8")
    print(f"{out}: {len(kept) + len(grid)} regions ({len(grid)} grid cells)")


if __name__ == "__main__":
    main()
