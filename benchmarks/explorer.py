"""Artifact folders in, the explorer's figures out: for each artifact, the time to write its site, the site's
size, and in headless Chromium (Debian's chromium + chromium-driver, as the browser tests use it) the time
to the first view (the overview, a fresh browser opening index.html from file://) with the bytes it loaded,
and the time to a neuron page opened by deep link in a fresh browser, with its bytes. Not a timed test.

    .venv/bin/python benchmarks/explorer.py demo-artifacts [MORE_ARTIFACTS ...] [--json out.json]
    .venv/bin/python benchmarks/explorer.py demo-artifacts --screenshot docs/explorer-neuron.png --route '#/neuron/L6.N12'

Times are the median of `--repeat` fresh browsers (default 3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import find_chromium, open_browser  # noqa: E402


def loaded_bytes(urls: list[str], site: Path) -> int:
    total = 0
    for url in set(urls):
        parsed = urlparse(url)
        if parsed.scheme == "file":
            path = Path(unquote(parsed.path))
            if path.is_file() and site.resolve() in path.resolve().parents:
                total += path.stat().st_size
    return total


def measure(site: Path, route: str, repeat: int) -> dict:
    times, sizes = [], []
    for _ in range(repeat):
        with open_browser() as browser:
            times.append(browser.open(site / "index.html", route, timeout=120))
            sizes.append(loaded_bytes(browser.requests(), site))
            errors = browser.console_errors()
            if errors:
                raise SystemExit(f"{route}: console errors {errors}")
    return {"route": route, "seconds": round(statistics.median(times), 3), "bytes": max(sizes)}


def first_neuron(site: Path) -> str:
    meta_layers = sorted(int(p.stem) for p in (site / "data" / "layer").glob("*.js"))
    text = (site / "data" / "layer" / f"{meta_layers[-1]}.js").read_text()
    rows = json.loads(text[text.index("]=") + 2:-2])["rows"]
    return rows[0][0]


def bench(artifact: Path, out_root: Path, repeat: int) -> dict:
    import ft_artifacts
    from ft_artifacts.explore import write_site

    art = ft_artifacts.load(artifact)
    start = time.perf_counter()
    result = write_site(art, out_root / artifact.name)
    write_seconds = time.perf_counter() - start
    site = result["out"]
    neuron = first_neuron(site)
    return {"artifact": str(artifact), "model": art.manifest.model.id,
            "rows": {n: c.rows for n, c in art.manifest.configs.items()},
            "write_seconds": round(write_seconds, 1), "site_files": len(result["files"]) + 1,
            "site_bytes": result["bytes"], "first_view": measure(site, "#/", repeat),
            "neuron_page": measure(site, f"#/neuron/{neuron}", repeat)}


def markdown(results: list[dict]) -> str:
    lines = ["| artifact | rows (neurons + groups) | write | site | first view | its bytes | neuron page | its bytes |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['rows']['neurons']:,} + {r['rows']['word_groups']:,} | {r['write_seconds']} s | "
                     f"{r['site_bytes'] / 1e6:.1f} MB in {r['site_files']} files | {r['first_view']['seconds']} s | "
                     f"{r['first_view']['bytes'] / 1e3:.0f} kB | {r['neuron_page']['seconds']} s | "
                     f"{r['neuron_page']['bytes'] / 1e3:.0f} kB |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="where to write the sites (default: a temporary folder)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--screenshot", type=Path, help="instead: a PNG of --route of the first artifact's site")
    parser.add_argument("--route", default="#/")
    args = parser.parse_args(argv)
    if find_chromium()[2]:
        raise SystemExit(find_chromium()[2])
    out_root = args.out or Path(tempfile.mkdtemp(prefix="ft-explorer-bench-"))
    if args.screenshot:
        from ft_artifacts.explore import write_site

        site = write_site(args.artifacts[0], out_root / args.artifacts[0].name)["out"]
        with open_browser() as browser:
            browser.driver.set_window_size(1200, 1400)
            browser.open(site / "index.html", args.route)
            browser.screenshot(args.screenshot)
        print(f"wrote {args.screenshot}")
        return
    results = []
    for artifact in args.artifacts:
        results.append(bench(artifact, out_root, args.repeat))
        print(json.dumps(results[-1]), flush=True)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
