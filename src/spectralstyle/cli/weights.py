"""``spectralstyle weights``: see, fetch, check and import pretrained weights before a run needs them.

For people who prepare machines: ``download`` on a login node with network fills the caches (or a
shared folder with ``--to``) for GPU nodes without it; ``list`` shows where each model was found and
where it would be looked for; ``verify`` loads each file; ``import`` places a file got elsewhere.
Exit codes: 0 all good, 1 something asked for is missing or wrong, 2 a user error.
"""

from __future__ import annotations

import json
import os
import urllib.error
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from spectralstyle.cli.common import console, make_console
from spectralstyle.errors import SpectralStyleError, WeightsMissingError
from spectralstyle.weights.resolve import Lookup, locate
from spectralstyle.weights.sources import CACHE_ENV, MODEL_KEYS, TITLES, model_key, offline_reason, redownload_vqgan

RUN_MODELS = ("clip-vit-b-32", "vgg19")  # what `transfer` needs: the default of download and verify
MISSING_EXIT = 1

weights_app = typer.Typer(help="See, download, verify and import pretrained weights (CLIP, VGG19, VQGAN).",
                          no_args_is_help=True)
NamesArg = Annotated[Optional[list[str]], typer.Argument(
    help=(f"Models: {', '.join(MODEL_KEYS)} (or clip, vgg, vqgan). "
          f"Default: {' and '.join(RUN_MODELS)}, what transfer needs."),
    show_default=False)]


def _keys(names: Optional[list[str]], default: tuple[str, ...] = RUN_MODELS) -> list[str]:
    return list(dict.fromkeys(model_key(n) for n in names)) if names else list(default)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def _verified_label(verified: str) -> str:
    return {"sha256": "sha256 ok", "recorded": "matches record"}.get(verified, "no published digest")


def _safe_locate(key: str, network: bool) -> tuple[Lookup, str]:
    """``locate`` that turns a damaged or refused file into a row's error text instead of a stop."""
    try:
        return locate(key, network=network), ""
    except WeightsMissingError as exc:
        return Lookup(key), str(exc)


def _entry(key: str) -> dict[str, Any]:
    lookup, error = _safe_locate(key, network=False)
    found = lookup.found
    return {
        "model": key, "title": TITLES[key], "found": found is not None, "error": error or None,
        "source": found.source if found else None, "path": str(found.path) if found else None,
        "size_bytes": _size(found.path) if found else None, "verified": found.verified if found else None,
        "places": [{"source": p.source, "where": p.where, "download": p.remote, "status": p.status}
                   for p in lookup.places],
    }


@weights_app.command("list")


def list_weights(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")] = False,
) -> None:
    """Where each model was found (which place), its size, whether it is verified, and every place looked in.
    Never downloads."""
    entries = [_entry(key) for key in MODEL_KEYS]
    if json_out:
        typer.echo(json.dumps({"cache": os.environ.get(CACHE_ENV) or None, "offline": offline_reason() or None,
                               "models": entries}, indent=2))
        return
    table = Table(title="spectralstyle weights")
    for name in ("model", "found in", "path", "size", "verified", "looked in (in order)"):
        table.add_column(name, overflow="fold")
    for e in entries:
        status = escape(e["source"]) if e["found"] else f"[red]{'damaged' if e['error'] else 'missing'}[/]"
        places = "\n".join(f"{i}. {escape(p['source'])}{' (download)' if p['download'] else ''}"
                           for i, p in enumerate(e["places"], 1))
        table.add_row(e["title"], status, escape(e["path"] or e["error"] or "-"),
                      _mib(e["size_bytes"]) if e["found"] else "-",
                      _verified_label(e["verified"]) if e["found"] else "-", places)
    out = make_console()
    out.print(table)
    out.print("`spectralstyle weights list --json` shows every place's full path; "
              + (f"downloads are off ({offline_reason()})" if offline_reason()
                 else "a missing model is downloaded when a run needs it, where there is network"),
              highlight=False)


@weights_app.command("download")


def download_weights(
    names: NamesArg = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model the tool knows.")] = False,
    to: Annotated[Optional[Path], typer.Option("--to", help=(
        "Also place each file in this folder (a shared cache: "
        f"point {CACHE_ENV} at it on the machines that run)."))] = None,
) -> None:
    """Fetch weights ahead of a run (e.g. on a login node before jobs on nodes without network)."""
    if names and all_models:
        raise SpectralStyleError("name models or pass --all, not both")
    keys = list(MODEL_KEYS) if all_models else _keys(names)
    if to is not None:
        if to.exists() and not to.is_dir():
            raise SpectralStyleError(f"--to {to} is not a folder")
        os.environ[CACHE_ENV] = str(to.expanduser())  # URL downloads land there directly
    from spectralstyle.method.weights_check import place

    failed = False
    for key in keys:
        lookup, error = _safe_locate(key, network=True)
        if error and key == "vqgan-f16-16384" and "is damaged" in error:
            try:
                lookup.found, error = redownload_vqgan(), ""
            except (WeightsMissingError, urllib.error.URLError, OSError, ValueError) as exc:
                error = f"{error}; downloading again failed: {exc}"
        if lookup.found is None:
            failed = True
            reasons = (error or "; ".join(f"{p.source}: {p.status}" for p in lookup.places if p.remote)
                       or "no download source")
            console.print(f"[red]missing[/] {TITLES[key]}: {escape(reasons)}", highlight=False, soft_wrap=True)
            continue
        line = f"[green]ok[/] {TITLES[key]}: {escape(str(lookup.found.path))} ({escape(lookup.found.source)})"
        if to is not None:
            target, copied = place(key, lookup.found.path, to.expanduser())
            line += f"; {'copied to' if copied else 'already in'} {escape(str(target))}"
        console.print(line, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(MISSING_EXIT)


@weights_app.command("verify")


def verify_weights(names: NamesArg = None) -> None:
    """Load each found file and check its shapes, and its SHA-256 where one is published or recorded.
    Without names: what transfer needs, plus every other model that is found."""
    from spectralstyle.method.weights_check import check

    keys = _keys(names)
    if not names:
        keys += [k for k in MODEL_KEYS if k not in keys and _safe_locate(k, network=False)[0].found is not None]
    table = Table(title="spectralstyle weights verify")
    for name in ("model", "path", "result", "verified"):
        table.add_column(name, overflow="fold")
    failed = False
    for key in keys:
        lookup, error = _safe_locate(key, network=False)
        if lookup.found is None:
            failed = True
            table.add_row(TITLES[key], "-", f"[red]{'damaged' if error else 'missing'}[/] {escape(error)}", "-")
            continue
        try:
            result = check(key, lookup.found.path)
        except SpectralStyleError as exc:
            failed = True
            table.add_row(TITLES[key], escape(str(lookup.found.path)), f"[red]failed[/] {escape(str(exc))}", "-")
            continue
        table.add_row(TITLES[key], escape(str(lookup.found.path)), f"[green]ok[/] {result.detail}",
                      _verified_label(result.verified))
    make_console().print(table)
    if failed:
        raise typer.Exit(MISSING_EXIT)


def import_weights(
    path: Annotated[Path, typer.Argument(help="A weights file (or transformers folder) you got elsewhere.")],
    as_model: Annotated[Optional[str], typer.Option(
        "--as", help="The model it should be (default: found by loading it).")] = None,
    to: Annotated[Optional[Path], typer.Option(
        "--to", help=f"Place it in this folder instead of the cache (${CACHE_ENV}).")] = None,
) -> None:
    """Check a weights file by loading it, then place it where the tool finds it (the spectralstyle cache)."""
    from spectralstyle.method.weights_check import check, identify, place

    if not path.exists():
        raise SpectralStyleError(f"{path} does not exist")
    result = check(model_key(as_model), path) if as_model else identify(path)
    target, copied = place(result.key, path, to.expanduser() if to else None)
    console.print(f"[green]{'imported' if copied else 'already there'}[/] {escape(str(path))} as {TITLES[result.key]}: "
                  f"{escape(str(target))} ({result.detail}; {_verified_label(result.verified)})", highlight=False,
                  soft_wrap=True)


weights_app.command("import")(import_weights)
