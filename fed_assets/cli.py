"""The ``fed-assets`` command line: seed the demo silos, refresh the catalog snapshot."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fed_assets.errors import FedAssetsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fed-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the embedded finance demo")
    demo_sub = demo.add_subparsers(dest="action", required=True)
    seed = demo_sub.add_parser("seed", help="generate the demo silos under the data folder")
    seed.add_argument(
        "--data", type=Path, help="data folder (default $FED_ASSETS_DATA or ./data/demo)"
    )
    seed.add_argument("--scale", type=float, default=1.0, help="size knob: 1 = 2,000 customers")
    seed.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    seed.add_argument("--if-missing", action="store_true", help="do nothing if already seeded")

    catalog = sub.add_parser("catalog", help="the catalog snapshot of silo tables")
    catalog_sub = catalog.add_subparsers(dest="action", required=True)
    refresh = catalog_sub.add_parser("refresh", help="re-read every silo's tables and schemas")
    refresh.add_argument("--silos", type=Path, help="YAML file of silos (default: the demo's)")
    refresh.add_argument("--snapshot", type=Path, help="snapshot file to write")

    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return _seed(args)
        return _refresh(args)
    except FedAssetsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _seed(args: argparse.Namespace) -> int:
    from fed_assets.demo.generate import DemoPaths, default_data_dir, generate

    root = (args.data or default_data_dir()).resolve()
    if args.if_missing and DemoPaths(root).compliance.exists():
        print(f"demo silos already seeded in {root}")
        return 0
    started = time.perf_counter()
    counts = generate(root, scale=args.scale, seed=args.seed)
    rows = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    print(f"seeded {root} in {time.perf_counter() - started:.1f} s: {rows}")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from fed_assets.catalog import Catalog
    from fed_assets.config import silos_from_yaml
    from fed_assets.demo.generate import DemoPaths, default_data_dir
    from fed_assets.demo.silos import embedded_silos

    paths = DemoPaths(default_data_dir())
    silos = silos_from_yaml(args.silos, resolve_env=True) if args.silos else embedded_silos(paths)
    outcome = Catalog(silos, args.snapshot or paths.catalog).refresh()
    for name, result in outcome.items():
        print(f"{name}: {result}")
    return 0 if all(r == "ok" for r in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
