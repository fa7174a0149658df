"""``aeroseg weights list | download | verify | import | convert``: the official CLIP and SAM checkpoints, and
conversion of CAT-Seg / OVRS checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.safety import exclusive, same_file

weights_app = typer.Typer(
    help="List, download, verify or import the official CLIP and SAM weights; convert CAT-Seg / OVRS checkpoints.",
    no_args_is_help=True,
)


def _spec(name: str):
    from models import hub

    try:
        return hub.spec_for(name)
    except hub.WeightsError as exc:
        raise UsageError(str(exc)) from None


@weights_app.command("list")
def list_weights(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show every known weights file, its size and whether it is in the cache ($AEROSEG_HOME)."""
    from rich.console import Console
    from rich.table import Table

    from models import hub

    rows = []
    for spec in hub.REGISTRY.values():
        path = hub.cached_path(spec)
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "size_mb": spec.size_mb,
                "present": path.is_file(),
                "path": str(path),
                "sha256": spec.sha256,
                "url": spec.url,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"weights cache: {hub.home() / 'weights'}")
    for col in ("name", "description", "MB", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["description"], str(r["size_mb"]), "present" if r["present"] else "missing")
    Console().print(table)


@weights_app.command("download")
def download(
    names: list[str] = typer.Argument(None, help="Weights to fetch (see `aeroseg weights list`)."),
    all_: bool = typer.Option(False, "--all", help="Fetch every file in the list."),
    mirror: str = typer.Option(
        None, "--mirror", envvar="AEROSEG_WEIGHTS_MIRROR", help="Base URL of a mirror holding the same file names."
    ),
    force: bool = typer.Option(False, "--force", help="Download again even when a verified file is present."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Download official weights into the cache, verifying each file's published SHA-256."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from aeroseg_cli.runtime import weights as placement
    from models import hub

    if not names and not all_:
        raise UsageError(
            "name the weights to download (e.g. `aeroseg weights download clip-vit-b-16 sam-vit-l`) or --all"
        )
    specs = list(hub.REGISTRY.values()) if all_ else [_spec(n) for n in names]
    console = Console(stderr=True, quiet=quiet)
    for spec in specs:
        path = hub.cached_path(spec)
        if path.is_file() and not force and hub.sha256_file(path) == spec.sha256:
            console.print(f"{spec.name}: already present and verified at {path}")
            continue
        bar = ("[bold]" + spec.name, BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*bar, console=console, disable=quiet or not console.is_terminal) as progress:
            task = progress.add_task(spec.name, total=None)

            def report(done: int, total: int, task=task, progress=progress) -> None:
                progress.update(task, completed=done, total=total or None)

            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with exclusive([path]):
                    placement.download(spec, mirror=mirror, progress=report)
            except hub.WeightsError as exc:
                raise CLIError(str(exc)) from None
        console.print(f"{spec.name}: verified and saved to {path}")


@weights_app.command("verify")
def verify(names: list[str] = typer.Argument(None, help="Weights to check (default: every file present).")) -> None:
    """Check the SHA-256 of cached weights; exits 1 if any file is missing or altered."""
    from models import hub

    specs = [_spec(n) for n in names] if names else [s for s in hub.REGISTRY.values() if hub.cached_path(s).is_file()]
    if not specs:
        typer.echo(f"no weights in {hub.home() / 'weights'}; nothing to verify")
        return
    bad = []
    for spec in specs:
        try:
            hub.resolve(spec.name)
            typer.echo(f"{spec.name}: OK")
        except hub.WeightsError as exc:
            typer.echo(f"{spec.name}: FAILED ({exc})")
            bad.append(spec.name)
    if bad:
        raise CLIError(f"{len(bad)} weights file(s) failed verification: {', '.join(bad)}")


@weights_app.command("import")
def import_(
    name: str = typer.Argument(..., help="Which weights the file is (see `aeroseg weights list`)."),
    file: Path = typer.Argument(..., help="The file, fetched by other means (offline machines)."),
) -> None:
    """Copy a weights file fetched elsewhere into the cache after checking its SHA-256."""
    from aeroseg_cli.runtime import weights as placement
    from models import hub

    spec = _spec(name)
    if file.is_dir():
        raise UsageError(f"{file} is a folder; give the weights file itself ({spec.filename})")
    if not file.is_file():
        raise UsageError(f"{file}: no such file")
    dest = hub.cached_path(spec)
    try:
        if same_file(file, dest):  # importing the cached file onto itself: only verify it
            hub.verify_file(spec, file)
            typer.echo(f"{spec.name}: {dest} is already the verified cached file")
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        with exclusive([dest]):
            dest = placement.import_file(spec, file)
    except hub.WeightsError as exc:
        raise CLIError(str(exc)) from None
    typer.echo(f"{spec.name}: verified and saved to {dest}")


CONVERT_KINDS = ("catseg", "ovrs")  # models.convert.CONVERTERS, named here so that --help and usage errors stay fast


@weights_app.command("convert")
def convert(
    kind: str = typer.Argument(
        ..., help="catseg: CAT-Seg's released model_base.pth / model_large.pth; ovrs: a checkpoint of OVRS's code."
    ),
    src: Path = typer.Argument(..., help="The checkpoint as that codebase saved it (read, never changed)."),
    output: Path = typer.Option(..., "-o", "--output", help="AerOSeg checkpoint to write (.pt)."),
    self_contained: bool = typer.Option(
        False,
        "--self-contained",
        help="Store every tensor. Default: lean (only what differs from the official CLIP file) when that file is "
        "in the weights cache, else self-contained.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Print the conversion report as JSON on stdout."),
) -> None:
    """Convert a CAT-Seg or OVRS checkpoint into an AerOSeg checkpoint, usable as --model OUT.pt."""
    from aeroseg_cli.files.safety import Output, check_outputs

    if kind not in CONVERT_KINDS:
        raise UsageError(f"convert what? {kind!r}; choose one of: {', '.join(CONVERT_KINDS)}")
    if src.is_dir() or not src.is_file():
        raise UsageError(f"{src}: no such checkpoint file")
    check_outputs([Output(output, "--output")], [src], overwrite)
    from models.convert import CONVERTERS
    from models.hub import WeightsError

    try:
        with exclusive([output]):
            report = CONVERTERS[kind](src, output, self_contained=self_contained)
    except WeightsError as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(_convert_summary(report), err=True)


def _convert_summary(report: dict) -> str:
    """The report in a few lines: variant, tensors used and ignored (with why), what the output holds."""
    lines = [f"{report['source']}: {report['variant']}, {report['tensors_used']} of {report['tensors']} tensors used"]
    for key, why in {**report["tensors_ignored"], **report["top_level_ignored"]}.items():
        lines.append(f"  ignored {key}: {why}")
    if not report["self_contained"]:
        form = "lean (references the official CLIP file)"
    elif report["self_contained_because"]:
        form = "self-contained (the official CLIP file is not in the weights cache)"
    else:
        form = "self-contained"
    lines.append(f"wrote {report['output']}: {form}")
    return "\n".join(lines)
