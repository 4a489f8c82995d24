"""The ``fed-assets`` command line: seed the demo, refresh the catalog, run and explain queries."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fed_assets.errors import ConfigurationError, FedAssetsError

# Rows the `table` format prints; the full result goes to --output or csv/json.
TABLE_MAX_ROWS = 50
FORMATS = ("table", "csv", "json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fed-assets", description=__doc__, formatter_class=_DefaultsShown
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add_parser(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, formatter_class=_DefaultsShown, **kwargs)

    demo = add_parser(sub, "demo", help="the embedded finance demo")
    demo_sub = demo.add_subparsers(dest="action", required=True)
    seed = add_parser(demo_sub, "seed", help="generate the demo silos under the data folder")
    seed.add_argument(
        "--data", type=Path, help="data folder (default: $FED_ASSETS_DATA, else ./data/demo)"
    )
    seed.add_argument("--scale", type=float, default=1.0, help="size knob: 1 = 2,000 customers")
    seed.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    seed.add_argument("--if-missing", action="store_true", help="do nothing if already seeded")

    catalog = add_parser(sub, "catalog", help="the catalog snapshot of silo tables")
    catalog_sub = catalog.add_subparsers(dest="action", required=True)
    refresh = add_parser(catalog_sub, "refresh", help="re-read every silo's tables and schemas")
    refresh.add_argument("--silos", type=Path, help="YAML file of silos (default: the demo's)")
    refresh.add_argument(
        "--snapshot", type=Path, help="snapshot file to write (default: the demo's catalog.json)"
    )

    run = add_parser(sub, "query", help="run a federated SQL query over the silos")
    explain = add_parser(sub, "explain", help="show the plan of a federated query; runs nothing")
    for p in (run, explain):
        p.add_argument("sql", help="SQL naming tables as silo.table, or @file.sql")
        p.add_argument("--silos", type=Path, help="YAML file of silos (default: the demo's)")
        p.add_argument(
            "--engine-region",
            help="region the embedded engine runs in, checked against each silo's residency "
            "policy (default: unset, so no data may go where a policy names allowed regions)",
        )
    run.add_argument("--format", choices=FORMATS, default="table", help="output format")
    run.add_argument("--output", type=Path, help="write the result to this file")
    run.add_argument(
        "--max-rows", type=int, default=TABLE_MAX_ROWS, help="rows the table format shows"
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return _seed(args)
        if args.command == "query":
            return _query(args)
        if args.command == "explain":
            return _explain(args)
        return _refresh(args)
    except FedAssetsError as err:
        print(f"error: {as_cli_advice(err)}", file=sys.stderr)
        return 1


class _DefaultsShown(argparse.HelpFormatter):
    """Help that gives every option's default: ``(default: X)`` where the option has one and its
    help does not say already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if shown and "default" not in text:
            text += " (default: %(default)s)"
        return text


# Python arguments the library's error messages name, and the CLI options that set them.
_OPTION_OF = {"engine_region": "--engine-region"}


def as_cli_advice(err: FedAssetsError) -> str:
    """``err``'s message with each Python argument its fix names (``engine_region='uk'``) as the
    command-line option that sets it (``--engine-region uk``)."""
    import re

    text = str(err)
    for argument, option in _OPTION_OF.items():
        text = re.sub(rf"\b{argument}='([^']*)'", rf"{option} \1", text)
        text = re.sub(rf"\b{argument}=?\b", option, text)
    return text


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


def _silos(path: Path | None):
    """Silos from a YAML file (environment variables read now), else the demo's on local disk."""
    from fed_assets.config import silos_from_yaml
    from fed_assets.demo.generate import DemoPaths, default_data_dir
    from fed_assets.demo.silos import embedded_silos

    if path is not None:
        return silos_from_yaml(path, resolve_env=True)
    return embedded_silos(DemoPaths(default_data_dir()))


def _sql_text(arg: str) -> str:
    """The SQL itself, or the contents of the file named after an '@'."""
    if not arg.startswith("@"):
        return arg
    path = Path(arg[1:])
    try:
        return path.read_text()
    except OSError as err:
        raise ConfigurationError(
            f"SQL file {path}", f"it cannot be read ({err.strerror})", "check the path after '@'"
        ) from None


def _explain(args: argparse.Namespace) -> int:
    from fed_assets.query import explain

    print(explain(_sql_text(args.sql), _silos(args.silos), engine_region=args.engine_region))
    return 0


def _query(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fed_assets.query import query

    sql, silos = _sql_text(args.sql), _silos(args.silos)
    err = Console(stderr=True)
    with _FragmentProgress(err) as progress:
        result = query(sql, silos, engine_region=args.engine_region, progress=progress)
    table = result.table
    if args.output is not None:
        with open(args.output, "wb") as out:
            _write(table, args.format, out, max_rows=args.max_rows)
    else:
        _write(table, args.format, sys.stdout.buffer, max_rows=args.max_rows)
        sys.stdout.flush()
    seconds = sum(result.stage_seconds.values())
    err.print(
        f"{table.num_rows:,} rows in {seconds:.2f} s; moved {result.bytes_moved / 1e6:,.2f} MB "
        f"from {len(result.fragments)} fragment(s)"
        + (f"; written to {args.output}" if args.output else ""),
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _write(table, fmt: str, out, *, max_rows: int) -> None:
    """Write an Arrow table to a binary stream as a text table, CSV or a JSON array of rows."""
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, out)
    elif fmt == "json":
        out.write(json.dumps(table.to_pylist(), default=_json_value, indent=1).encode() + b"\n")
    else:
        import io

        from rich.console import Console
        from rich.table import Table

        shown = table.slice(0, max_rows)
        view = Table(*table.column_names)
        for row in shown.to_pylist():
            view.add_row(*("" if v is None else str(v) for v in row.values()))
        text = io.StringIO()
        Console(file=text, width=max(80, 14 * table.num_columns), highlight=False).print(view)
        if shown.num_rows < table.num_rows:
            text.write(
                f"({shown.num_rows} of {table.num_rows:,} rows shown; "
                "--format csv/json or --output for all)\n"
            )
        out.write(text.getvalue().encode())


def _json_value(value):
    """JSON for what ``json`` cannot write: decimals as numbers, anything else as text."""
    import decimal

    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


class _FragmentProgress:
    """A rich progress display of running fragments, fed by ``query(..., progress=...)``."""

    def __init__(self, console):
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=console.is_terminal,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self._tasks:  # started by the first fragment: a refused plan shows nothing
            self._progress.stop()

    def __call__(self, event: str, fragment, info: dict) -> None:
        label = f"{fragment.id} {fragment.silo}"
        if event == "start":
            if not self._tasks:
                self._progress.start()
            self._tasks[fragment.id] = self._progress.add_task(f"{label}: running", total=1)
        elif event == "done":
            self._progress.update(
                self._tasks[fragment.id],
                completed=1,
                description=f"{label}: {info['rows']:,} rows, {info['bytes'] / 1e6:,.2f} MB",
            )


if __name__ == "__main__":
    sys.exit(main())
