"""``aeroseg weights list | download | verify | import | default | convert``: the published backbone files (CLIP,
SAM), the released models (CAT-Seg), which model runs when ``--model`` is not given, and conversion of CAT-Seg /
OVRS checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from aeroseg_cli.commands.options import JSON_SUMMARY, OVERWRITE, QUIET
from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.safety import exclusive, refuse_non_file, same_file

weights_app = typer.Typer(
    help="List, download, verify or import published weights and released models; set the default model; convert "
    "CAT-Seg / OVRS checkpoints.",
    no_args_is_help=True,
)


BUSY = "wait for it to finish, then run this command again"  # the cache file is locked by another aeroseg


def _spec(name: str, to_place: bool = False):
    """The registry entry ``name``; with ``to_place`` (download, import) it must be one this aeroseg can use: a
    released model whose converter is missing is refused before anything is fetched."""
    from models import hub

    try:
        spec = hub.spec_for(name)
    except hub.WeightsError as exc:
        raise UsageError(str(exc)) from None
    if to_place and not hub.offered(spec):
        raise UsageError(f"{hub.not_offered(spec)}; nothing was downloaded or placed")
    return spec


def _row(spec) -> dict:
    """One registry entry as ``weights list`` shows it; nothing is hashed (``weights verify`` does that)."""
    from models import hub

    record, status = hub.read_record(spec), hub.status(spec)
    converted = hub.converted_model(spec.name)
    return {
        "name": spec.name,
        "description": spec.description,
        "size_mb": spec.size_mb,
        "size": spec.size_text(),
        "present": status != "missing",
        "status": status,
        "path": str(hub.cached_path(spec)),
        "sha256": spec.sha256,
        "sha256_published": spec.sha256 is not None,
        "git_blob": spec.git_blob,
        "recorded_sha256": record.sha256 if record and status != "missing" else None,
        "url": spec.url,
        "sources": [s.url for s in spec.sources],
        "converted": str(converted) if converted else None,
    }


def _status_text(row: dict) -> str:
    from models import hub

    text = hub.STATUS_WORDS[row["status"]]
    if row["converted"]:
        text += "; converted"
    elif row["present"] and hub.REGISTRY[row["name"]].convert:
        text += "; not converted yet"
    return text


@weights_app.command("list")
def list_weights(as_json: bool = JSON_SUMMARY) -> None:
    """Show every known file and released model, its size (from each source: OpenAI's file, open_clip's fp32 copy),
    and its state in the cache ($AEROSEG_HOME): official, SHA-256 recorded at download (none published), accepted
    (your copy), missing; and the default model. Released models appear once this aeroseg can convert them."""
    from rich.console import Console
    from rich.table import Table

    from aeroseg_cli.runtime.modelchoice import read_default
    from models import hub

    rows = [_row(spec) for spec in hub.REGISTRY.values() if hub.offered(spec)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))  # a list, as before (`weights default` prints the default)
        return
    table = Table(title=f"weights cache: {hub.home() / 'weights'}")
    for col in ("name", "description", "size", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["description"], r["size"], _status_text(r))
    Console().print(table)
    unpublished = "".join(f"{r['name']}, " for r in rows if not r["sha256_published"] and not r["git_blob"])
    blobs = [r["name"] for r in rows if not r["sha256_published"] and r["git_blob"]]
    typer.echo(  # plain lines: never wrapped
        f"No published SHA-256 for {unpublished + 'nor for ' if unpublished else ''}open_clip's copies CLIP falls "
        "back to: such a download is read and checked (its tensors; a released model by converting it), then its "
        "SHA-256 is recorded and checked from then on ('SHA-256 recorded at download')."
    )
    if blobs:
        typer.echo(
            f"{', '.join(blobs)}: no published SHA-256, but the git repository it comes from names it by its git blob "
            "id, which the download must match; its SHA-256 is then recorded."
        )
    typer.echo(f"default model: {read_default() or 'none set (the best model here is used)'}")


def _fetch_one(spec, mirror: str | None, force: bool, console, quiet: bool) -> None:
    """Download one entry (unless a verified copy is there, or ``force``); a released model is converted before its
    file is placed."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from aeroseg_cli.runtime import weights as placement
    from models import hub

    path = hub.cached_path(spec)
    if path.is_file() and not force and _verified(spec):
        console.print(f"{spec.name}: already present and verified at {path} (--force downloads it again)")
        if placement.needs_conversion(spec):
            with exclusive([path], BUSY):
                out = placement.convert(spec)
            console.print(f"{spec.name}: converted into {out}; use it with --model {spec.name}")
        return
    bar = ("[bold]" + spec.name, BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*bar, console=console, disable=quiet or not console.is_terminal) as progress:
        task = progress.add_task(spec.name, total=None)

        def report(done: int, total: int, task=task, progress=progress) -> None:
            progress.update(task, completed=done, total=total or None)

        refuse_non_file(path, "the cached weights file")  # before a long download, not after it
        path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive([path], BUSY):
            placed = placement.download(spec, mirror=mirror, progress=report)
    _say_placed(console, spec, placed)


def _verified(spec) -> bool:
    from models import hub

    try:
        hub.verify(spec)
    except hub.WeightsError:
        return False
    return True


def _say_placed(console, spec, placed) -> None:
    """Where the file came from and what its hash is; sources passed over (a refused published file may have been
    damaged or altered) and a recorded hash are said even with -q, on stderr."""
    from models import hub

    passed = "".join(f"{s.what} not used ({why}); " for s, why in placed.passed_over)
    used = f"used {placed.what} ({placed.source})" if passed else f"from {placed.source}"
    if placed.trust == "recorded":
        none = "whose SHA-256 is not published" if spec.published else "no SHA-256 is published for it"
        checked = "converted into a model" if spec.convert else "its tensors checked"
        typer.echo(
            f"{spec.name}: {passed}{used}, {none}: {checked}, its SHA-256 {placed.sha256} recorded (the file is "
            f"checked against it from now on) and saved to {placed.path}",
            err=True,
        )
    elif passed:
        typer.echo(f"{spec.name}: {passed}{used}, {hub.STATUS_WORDS[placed.trust]}, saved to {placed.path}", err=True)
    else:
        console.print(f"{spec.name}: {hub.STATUS_WORDS[placed.trust]}, saved to {placed.path} ({used})")
    if placed.converted:
        console.print(f"{spec.name}: converted into {placed.converted}; use it with --model {spec.name}")


@weights_app.command("download")
def download(
    names: list[str] = typer.Argument(None, help="Weights or released models to fetch (see `aeroseg weights list`)."),
    all_: bool = typer.Option(False, "--all", help="Fetch every file and model `weights list` shows."),
    mirror: str = typer.Option(
        None,
        "--mirror",
        envvar="AEROSEG_WEIGHTS_MIRROR",
        help="Base URL of a mirror holding the same file names (tried instead of the published sources).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Download again even when a verified file is present (e.g. one that cannot be read)."
    ),
    quiet: bool = QUIET,
) -> None:
    """Download weights into the cache from their published sources, tried in order, checking each file's published
    SHA-256 (where none is published, its own is recorded); released models are then converted for --model."""
    from rich.console import Console

    from models import hub

    if not names and not all_:
        raise UsageError(
            "name the weights to download (e.g. `aeroseg weights download clip-vit-b-16 sam-vit-l`) or --all"
        )
    specs = [s for s in hub.REGISTRY.values() if hub.offered(s)] if all_ else [_spec(n, True) for n in names]
    console = Console(stderr=True, quiet=quiet)
    for spec in specs:
        try:
            _fetch_one(spec, mirror, force, console, quiet)
        except hub.WeightsError as exc:
            raise CLIError(str(exc)) from None


@weights_app.command("verify")
def verify(names: list[str] = typer.Argument(None, help="Weights to check (default: every file present).")) -> None:
    """Check the SHA-256 of cached weights (and of the safetensors copy of a TorchScript archive, rewritten if it
    is damaged); exits 1 if any file is missing or altered."""
    from models import hub

    specs = [_spec(n) for n in names] if names else [s for s in hub.REGISTRY.values() if hub.cached_path(s).is_file()]
    if not specs:
        typer.echo(f"no weights in {hub.home() / 'weights'}; nothing to verify")
        return
    bad = []
    for spec in specs:
        try:
            cached = hub.verify(spec, full=True)
            converted = hub.converted_model(spec.name)
            if converted:
                from models.checkpoint import read_checkpoint

                read_checkpoint(converted)  # its content digest
            typer.echo(f"{spec.name}: OK ({hub.STATUS_WORDS[cached.trust]}{'; converted' if converted else ''})")
        except hub.WeightsError as exc:
            typer.echo(f"{spec.name}: FAILED ({exc})")
            bad.append(spec.name)
    if bad:
        raise CLIError(f"{len(bad)} weights file(s) failed verification: {', '.join(bad)}")


@weights_app.command("import")
def import_(
    name: str = typer.Argument(..., help="Which weights the file is (see `aeroseg weights list`)."),
    file: Path = typer.Argument(..., help="The file, fetched by other means (offline machines)."),
    accept_checksum: bool = typer.Option(
        False,
        "--accept-checksum",
        help="Use a copy whose SHA-256 is not the published one (re-saved, converted, open_clip's copy): its tensors "
        "are checked, its own SHA-256 is recorded and verified from then on, and `weights list` marks it accepted.",
    ),
) -> None:
    """Copy a weights file fetched elsewhere into the cache after checking its SHA-256 (any published format:
    OpenAI's TorchScript, open_clip's state dict or safetensors, Meta's SAM checkpoint)."""
    from aeroseg_cli.runtime import weights as placement
    from models import hub

    spec = _spec(name, True)
    if file.is_dir():
        raise UsageError(f"{file} is a folder; give the weights file itself ({spec.filename})")
    if not file.is_file():
        raise UsageError(f"{file}: no such file")
    dest = hub.cached_path(spec)
    refuse_non_file(dest, "the cached weights file")
    try:
        if same_file(file, dest):  # importing the cached file onto itself: only verify it
            hub.verify(spec, full=True)
            typer.echo(f"{spec.name}: {dest} is already the verified cached file")
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        with exclusive([dest], BUSY):
            placed = placement.import_file(spec, file, accept_checksum)
    except hub.WeightsError as exc:
        raise CLIError(str(exc)) from None
    _say_imported(spec, placed)


def _say_imported(spec, placed) -> None:
    from models import hub

    if placed.trust == "accepted":
        typer.echo(
            f"{spec.name}: imported {placed.source} as it is (accepted: SHA-256 {placed.sha256}, not a published "
            f"file's) into {placed.path}; runs use it, `weights list` marks it accepted, and lean checkpoints made "
            "with it reference this SHA-256"
        )
    else:
        typer.echo(f"{spec.name}: imported {placed.source} ({hub.STATUS_WORDS[placed.trust]}) into {placed.path}")
    if placed.converted:
        typer.echo(f"{spec.name}: converted into {placed.converted}; use it with --model {spec.name}")


@weights_app.command("default")
def default(
    model: str = typer.Argument(None, metavar="[NAME|CKPT]", help="A model name or a checkpoint file."),
    clear: bool = typer.Option(False, "--clear", help="Forget the default: the best model here is used."),
) -> None:
    """Set the model segment and evaluate use when --model is not given (kept in $AEROSEG_HOME); without an
    argument, show it and what --model resolves to now."""
    from aeroseg_cli.runtime.modelchoice import check_default, choose_model, read_default, write_default

    if clear and model:
        raise UsageError("give a model or --clear, not both")
    if clear:
        write_default(None)
        typer.echo("default model cleared")
        return
    if model is None:
        typer.echo(f"default model: {read_default() or 'none set'}")
        try:
            choice = choose_model(None)
            typer.echo(f"without --model, segment and evaluate use: {choice.spec} ({choice.why})")
        except CLIError as exc:
            typer.echo(str(exc))
        return
    value = check_default(model)
    write_default(value)
    typer.echo(f"default model: {value}")


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
    overwrite: bool = OVERWRITE,
    as_json: bool = JSON_SUMMARY,
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
