"""The ``cl-spoof`` command line. The only place that prints or exits.

Heavy libraries (torch, Avalanche, pandas) are imported inside the commands, after
the checks that need none of them, so that a mistake (a typo, a finished run) is
answered at once.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a 2-core machine spinning threads
# made torch many times slower whenever another process was busy. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import contextlib  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Annotated, Any, TypeVar  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from cl_spoof import __version__  # noqa: E402
from cl_spoof.errors import CLSpoofError, did_you_mean, os_error_message  # noqa: E402
from cl_spoof.labels import JOINT  # noqa: E402
from cl_spoof.strategies.registry import STRATEGIES  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress, TaskID
    from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])
DEBUG = False  # --debug: show the traceback of an error


class _RootGroup(TyperGroup):
    """The root command: ``--debug`` is taken wherever it stands before a ``--`` (after the
    subcommand too, where it is usually typed on a second try)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        global DEBUG
        cut = args.index("--") if "--" in args else len(args)
        DEBUG = "--debug" in args[:cut]
        args = [a for i, a in enumerate(args) if i >= cut or a != "--debug"]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RootGroup,
    help="cl-spoof: continual learning of fake-speech (spoofing) detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Utterance tables: manifests, checks, the demo corpus.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")
config_app = typer.Typer(help="The shipped configs, and every config key with its default.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM, with what the user can do next (raised by commands, shown by
    :func:`user_errors`); ``cause``: the interrupt (its signal sets the exit status)."""

    def __init__(self, hint: str, cause: BaseException | None = None) -> None:
        super().__init__(hint)
        self.hint = hint
        self.cause = cause


WAIT_HELP = ("When another command is changing the same folder, wait for it to finish "
             "instead of stopping at once.")


def _error_line(text: str) -> None:
    err_console.print(f"{_rank_prefix()}[bold red]error:[/] {escape(text)}",
                      highlight=False, soft_wrap=True)


def user_errors(fn: F) -> F:
    """Errors as one line, no traceback (``--debug`` shows it): :class:`CLSpoofError` and OS
    errors (full disk, permissions) exit 2, Ctrl-C 130 and SIGTERM 143 with how to
    continue, anything else (a bug) 1 (under torchrun a bug is raised, so torchrun reports
    it with its traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            no_memory = isinstance(exc, MemoryError) or _failed_allocation(exc)
            unexpected = not (no_memory or isinstance(exc, CLSpoofError | OSError | Interrupted
                                                      | KeyboardInterrupt))
            if unexpected and _rank_prefix():
                raise  # under torchrun: into its failure summary, with the traceback
            if DEBUG:
                traceback.print_exc()
            if isinstance(exc, CLSpoofError):
                _error_line(str(exc))
                code = 2
            elif isinstance(exc, OSError):
                _error_line(os_error_message(exc))
                code = 2
            elif no_memory:
                _error_line("out of memory; lower train.batch_size, train.eval_batch_size, "
                            "train.workers, data.num_samples or the model's size "
                            "(model.preset, model.overrides)")
                code = 2
            elif isinstance(exc, Interrupted | KeyboardInterrupt):
                from cl_spoof.infra.signals import stop_code

                hint = exc.hint if isinstance(exc, Interrupted) else "stopped"
                code = stop_code(exc.cause if isinstance(exc, Interrupted) else exc)
                how = " (SIGTERM)" if code == 143 else ""
                err_console.print(f"{_rank_prefix()}[bold yellow]interrupted{how}:[/] "
                                  f"{escape(hint)}", highlight=False, soft_wrap=True)
            else:
                _error_line(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for "
                            "the traceback, and please report it)")
                code = 1
            raise typer.Exit(code=code) from None

    return wrapper  # type: ignore[return-value]


def _failed_allocation(exc: BaseException) -> bool:
    """Whether ``exc`` is torch failing to allocate memory (a ``RuntimeError`` on the CPU,
    ``torch.OutOfMemoryError`` on a GPU): the user's sizes are too large, not a bug."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text.lower())


def _rank_prefix() -> str:
    """``rank 1: `` in a torchrun job of several processes, else nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
        return f"rank {os.environ['RANK']}: "
    return ""


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cl-spoof {__version__}")
        raise typer.Exit()


@app.callback()
def _root(ctx: typer.Context,
          debug: Annotated[bool, typer.Option(
              "--debug", help="Show the full traceback of an error (also accepted after the "
                              "command).")] = False,
          version: Annotated[bool, typer.Option(
              "--version", callback=_show_version, is_eager=True,
              help="Print the version and exit.")] = False) -> None:
    """cl-spoof: continual learning of fake-speech (spoofing) detection."""
    if _rank_prefix() and ctx.invoked_subcommand not in ("run", "compare"):
        err_console.print(f"{_rank_prefix()}[bold red]error:[/] `cl-spoof "
                          f"{ctx.invoked_subcommand}` runs in one process; under torchrun only "
                          "`run` and `compare` (data-parallel) are supported", highlight=False)
        raise typer.Exit(code=2)


# --------------------------------------------------------------------------- display


class ProgressDisplay:
    """A rich progress display that appears with its first task: nothing is drawn before
    the first unit of work, so an early error prints alone."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = err_console
        self._progress: Progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False)
        self._started = False

    def add_task(self, description: str, total: float | None = None) -> TaskID:
        """A new bar (the display starts with the first)."""
        if not self._started:
            self._progress.start()
            self._started = True
        return self._progress.add_task(description, total=total)

    def update(self, task: TaskID, **fields: Any) -> None:
        """Move a bar (``description``, ``completed``, ``total``)."""
        self._progress.update(task, **fields)

    def tracker(self, description: str) -> Callable[[int, int], None]:
        """A ``(done, total)`` callback whose bar appears on its first call."""
        task: list[TaskID] = []

        def report(done: int, total: int) -> None:
            if not task:
                task.append(self.add_task(description, total=total or None))
            self.update(task[0], completed=done, total=total or None)

        return report

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._progress.stop()


def progress_bar() -> ProgressDisplay:
    """A progress display for long work (drawn from its first task on)."""
    return ProgressDisplay()


def df_to_rich(df: pd.DataFrame, title: str | None = None) -> Table:
    """Render a DataFrame as a rich table (numbers right-aligned; every cell, header and the
    title as plain text: a name such as ``[bold]`` is shown, never taken for markup)."""
    import pandas as pd
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title is not None else None, show_lines=False)
    for col in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        table.add_column(Text(str(col)), justify="right" if numeric else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[Text(_fmt(v)) for v in row])
    return table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "—" if value != value else f"{value:.2f}"
    return str(value)


def _note(text: str) -> None:
    console.print(f"[yellow]note:[/] {escape(text)}", highlight=False, soft_wrap=True)


#: Said once under every table or summary with forgetting numbers.
FORGETTING_NOTE = ("forgetting in EER points: larger = more forgetting (↑ worse); BWT, in the "
                   "tables, is the other way: BWT < 0 means the detector forgot")


# --------------------------------------------------------------------------- config options

ConfigArg = Annotated[Path | None, typer.Argument(
    help="A YAML config, or the name of a shipped one (cl-spoof config list); default: the "
         "demo config on the embedded demo corpus.", show_default=False)]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="The config (the same as CONFIG).", show_default=False)]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Change one config key for this command, typed and checked as in the file "
         "(repeatable; dotted keys, YAML values: --set train.epochs=1 --set "
         "data.attacks=[A01,A02]); shown in the config the run writes.", show_default=False)]
DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="The data: a corpus root of any known layout or a CSV manifest (the same "
                   "as --set data.source=PATH).", show_default=False)]
AllowMissingOpt = Annotated[bool, typer.Option(
    "--allow-missing", help="Use the files present (a partial download; the same as --set "
                            "data.allow_missing=true).")]


def _config_path(config: Path | None, config_opt: Path | None) -> Path | None:
    """The config given as CONFIG or as ``--config`` (once)."""
    if config is not None and config_opt is not None and config != config_opt:
        raise CLSpoofError(f"two configs given ({config} and --config {config_opt}); give one")
    return config if config is not None else config_opt


def _overrides(sets: Sequence[str] | None, data: Path | None = None,
               allow_missing: bool = False) -> list[str]:
    """``--set`` overrides plus those of the shortcut options (after them: they win)."""
    out = list(sets or [])
    if data is not None:  # a JSON string is a YAML string, whatever the path holds
        out.append(f"data.source={json.dumps(str(data))}")
    if allow_missing:
        out.append("data.allow_missing=true")
    return out


@contextlib.contextmanager
def _blaming(overrides: Sequence[str]) -> Iterator[None]:
    """A config error raised later (a model preset, a layer, checked when the model is
    built) names the ``--set`` override it came from."""
    from cl_spoof.config import override_at_fault
    from cl_spoof.errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        text = override_at_fault(exc, overrides)
        if text is None:
            raise
        raise ConfigError(f"--set {text!r}: {exc}") from None


def _load_cfg(config: Path | None, overrides: Sequence[str] = (), strategy: str | None = None,
              seed: int | None = None) -> Any:
    """The run config of ``config`` with ``--set`` overrides, ``--strategy`` and ``--seed``."""
    from cl_spoof.config import with_overrides
    from cl_spoof.workflows.setup import load_run_config, resolve

    cfg = load_run_config(config, overrides, "--set")
    if strategy is not None:
        cfg = with_overrides(cfg, strategy={"name": strategy})
    if seed is not None:
        cfg = with_overrides(cfg, seed=seed)
    return resolve(cfg)


# --------------------------------------------------------------------------- config


def _config_summary(path: Path) -> str:
    """The first comment line of a config file (what it is)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


@config_app.command("list")
@user_errors
def config_list() -> None:
    """The configs shipped with cl-spoof (usable by name: cl-spoof run asvspoof2019_la)."""
    from cl_spoof.config import shipped_configs

    shipped = shipped_configs()
    width = max(map(len, shipped))
    for name, path in shipped.items():
        console.print(f"[bold]{name:<{width}}[/]  {escape(_config_summary(path))}",
                      highlight=False, soft_wrap=True)
    folder = next(iter(shipped.values())).parent
    console.print(f"(in {folder}; cl-spoof config show NAME prints one, cl-spoof config "
                  "defaults every key)", highlight=False, soft_wrap=True)


@config_app.command("show")
@user_errors
def config_show(name: Annotated[str, typer.Argument(
        help="A shipped config's name (cl-spoof config list).")]) -> None:
    """Print a shipped config (save it, edit it, run it)."""
    from cl_spoof.config import shipped_configs

    shipped = shipped_configs()
    stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    if stem not in shipped:
        raise CLSpoofError(f"no shipped config {name!r} (shipped: {', '.join(shipped)})"
                           + did_you_mean(stem, shipped))
    typer.echo(shipped[stem].read_text(encoding="utf-8"), nl=False)


@config_app.command("defaults")
@user_errors
def config_defaults() -> None:
    """Every config key with its default and what it does, as a YAML config."""
    from cl_spoof.config.docs import StrategyKey, defaults_text
    from cl_spoof.strategies.registry import hyperparameters

    keys = [StrategyKey(hp.name, hp.default, hp.help,
                        tuple(n for n, s in STRATEGIES.items() if hp in s.hyperparameters))
            for hp in hyperparameters().values()]
    typer.echo(defaults_text(keys), nl=False)


# --------------------------------------------------------------------------- data


@data_app.command("manifest")
@user_errors
def data_manifest(
    folders: Annotated[list[Path], typer.Argument(
        help="Folders of audio files (searched recursively), one or more.")],
    label: Annotated[str, typer.Option(help="'spoof' or 'bonafide'.")] = "spoof",
    attack: Annotated[str | None, typer.Option(help="Attack name (required for spoof).")] = None,
    split: Annotated[str, typer.Option(
        help="'train', 'dev' or 'eval' for every file (without --split-by).")] = "train",
    split_by: Annotated[str | None, typer.Option(
        "--split-by", help="Draw the splits instead: 'speaker' (each speaker's files in one "
                           "split) or 'file'; seeded, in --fractions.")] = None,
    fractions: Annotated[str | None, typer.Option(
        help="Shares of the splits with --split-by (default train=0.7,dev=0.1,eval=0.2).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --split-by.")] = 0,
    speaker: Annotated[str, typer.Option(help="Speaker id for every file (optional).")] = "",
    speaker_from: Annotated[str | None, typer.Option(
        "--speaker-from", help="Each file's speaker: 'parent' (the name of its folder) or a "
                               "regular expression searched in its path below FOLDER (its "
                               "first group, else the match; e.g. '^(\\d+)-' for "
                               "LibriSpeech names).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Output CSV (default: stdout); an existing file only with --force or --append, "
             "never one of the audio files or a file of a run directory.")] = None,
    append: Annotated[bool, typer.Option(
        "--append", help="Add the rows to the existing --out manifest (a file it lists "
                         "already is refused).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Write a manifest (path,label,attack,speaker,split) for every audio file under FOLDERS.

    One call per label and attack; --append the next set to the same manifest. For a
    new attack on a trained detector use `cl-spoof add-attack` instead.
    """
    from cl_spoof.data.manifest import (
        manifest_rows,
        manifest_text,
        parse_fractions,
        write_manifest,
    )
    from cl_spoof.infra.files import check_output_file
    from cl_spoof.rundir import results_folder_of

    if append and out is None:
        raise CLSpoofError("--append adds to the manifest named by --out; give --out")
    rows = manifest_rows(folders, label, attack, split, speaker, speaker_from, split_by,
                         parse_fractions(fractions) if fractions is not None else None, seed)
    if out is None:
        typer.echo(manifest_text(rows), nl=False)
        return
    check_output_file(out, "the manifest", force=force or append,
                      inputs=[*folders, *rows["path"]], guard=results_folder_of)
    n = write_manifest(rows, out, append=append)
    counts = rows["split"].value_counts()
    shown = ", ".join(f"{s} {counts[s]}" for s in ("train", "dev", "eval") if s in counts)
    err_console.print(f"{'added' if append else 'wrote'} {n} rows to {out} ({shown})",
                      highlight=False, soft_wrap=True)


@data_app.command("check")
@user_errors
def data_check(
    source: Annotated[Path, typer.Argument(
        help="A corpus root (ASVspoof 2019 LA / 2021 LA / 2021 DF / 5, In-the-Wild, WaveFake, "
             "Fake-or-Real: layout detected), a CSV manifest, or a YAML config (checks its "
             "data.source or every data.sources entry, and that no speaker is in the train "
             "split of one source and the test split of another).")],
    layout: Annotated[str | None, typer.Option(
        help="Read SOURCE with this reader instead of detecting the layout.")] = None,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Restrict the table to files present (a partial download).")
    ] = False,
) -> None:
    """Count utterances per split x attack x label and list every problem with its file."""
    from cl_spoof.data import read_source
    from cl_spoof.data.checks import check_table
    from cl_spoof.data.table import counts_table

    splits = None
    data_cfg = None
    if source.suffix.lower() in (".yaml", ".yml"):
        from cl_spoof.benchmark.loading import (
            apply_resplit,
            read_sources_table,
            resolve_source,
            splits_read,
        )
        from cl_spoof.workflows.setup import load_run_config

        data_cfg = load_run_config(source).data
        allow_missing = allow_missing or data_cfg.allow_missing
        splits = splits_read(data_cfg)
        table = (read_sources_table(data_cfg) if data_cfg.sources
                 else apply_resplit(read_source(resolve_source(data_cfg)), data_cfg))
    else:
        table = read_source(source, layout=layout)
    with progress_bar() as bar:
        report = check_table(table, allow_missing=allow_missing,
                             progress=bar.tracker("checking audio"), splits_read=splits)
    if data_cfg is not None and data_cfg.sources:  # one person on both sides of the split
        from cl_spoof.benchmark.loading import scored_splits
        from cl_spoof.data.checks import cross_source_speakers

        report.problems += cross_source_speakers(report.table, data_cfg.train_split,
                                                 scored_splits(data_cfg))
    console.print(df_to_rich(counts_table(report.table), title=f"{source}"))
    console.print(f"{len(report.table)} utterances")
    if allow_missing:
        console.print(f"dropped {report.dropped_missing} listed row(s) whose file is missing"
                      " (--allow-missing)")
    if not report.ok:
        err_console.print(escape(report.summary(source)), highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
    missing = report.missing_text(hint=False)
    if missing is not None and not allow_missing:  # only of splits the config never reads
        _note(f"{missing}: those files are never opened")
    console.print("[green]no problems found[/]")


# ---------------------------------------------------------------------------- run


class CliEvents:
    """Draws a run's progress with rich: one line per stage, a bar for the current work (and
    one for a comparison's runs), each epoch's training loss, and a warning when an attack
    is still near chance right after it was learned (``undertrained``: the EER % above
    which to warn, ``metrics.undertrained_eer``)."""

    def __init__(self, bar: ProgressDisplay, undertrained: float | None = None) -> None:
        self.bar = bar
        self.undertrained = undertrained
        self.task: TaskID | None = None
        self.overall: TaskID | None = None
        self.losses: list[float] = []

    def on_stage(self, text: str) -> None:
        self.bar.console.print(f"[bold cyan]>[/] {escape(text)}", highlight=False)

    def on_progress(self, desc: str, done: int, total: int) -> None:
        if self.losses and desc.startswith("train "):
            desc = f"{desc} · loss {self.losses[-1]:.3f}"
        if self.task is None:
            self.task = self.bar.add_task(desc, total=total or None)
        self.bar.update(self.task, description=desc, completed=done, total=total or None)

    def on_overall(self, desc: str, done: int, total: int) -> None:
        if self.overall is None:
            self.overall = self.bar.add_task(desc, total=total)
        self.bar.update(self.overall, description=desc, completed=done, total=total)

    def on_epoch(self, attack: str, epoch: int, epochs: int, loss: float) -> None:
        self.losses.append(loss)
        if epoch == epochs:
            shown = " ".join(f"{v:.3f}" for v in self.losses)
            self.bar.console.print(f"  training loss per epoch ({escape(attack)}): {shown}",
                                   highlight=False)
            self.losses = []

    def on_result(self, stage: int, attack: str, eers: dict[str, float]) -> None:
        shown = "  ".join(f"{a} {v:.1f}" for a, v in eers.items())
        what = "of the pretrained model" if stage == 0 else f"after learning {attack}"
        self.bar.console.print(f"  EER % {escape(what)} (stage {stage}): {escape(shown)}",
                               highlight=False)
        if self.undertrained is None or stage == 0:
            return
        # joint learns them all; a family's attacks are not named here: no warning
        learned = [attack] if attack in eers else list(eers) if attack == JOINT else []
        for name in learned:
            value = eers.get(name, float("nan"))
            if value == value and value > self.undertrained:
                self.bar.console.print(
                    f"[yellow]warning:[/] {escape(name)} is at {value:.1f} % EER right after "
                    f"learning it (above metrics.undertrained_eer = {self.undertrained:g} %): "
                    "under-trained? more train.epochs, another train.lr or more data",
                    highlight=False, soft_wrap=True)

    def as_run_events(self) -> Any:
        from cl_spoof.workflows.events import RunEvents

        return RunEvents(on_stage=self.on_stage, on_progress=self.on_progress,
                         on_result=self.on_result, on_epoch=self.on_epoch,
                         on_overall=self.on_overall)


def _run_hint(out_dir: Path) -> str:
    """What to do after Ctrl-C stopped a run in ``out_dir``."""
    from cl_spoof.rundir import RunDir

    run_dir = RunDir(out_dir)
    done = run_dir.recorded_stages()
    if done:
        return (f"{done} completed stage(s) kept in {out_dir}; continue with "
                f"`cl-spoof run --resume {out_dir}`")
    if run_dir.is_run():
        return f"no new stage completed; {out_dir} is as it was (`cl-spoof run --resume " \
               f"{out_dir}` continues it)"
    return "no stage had completed, so nothing was kept; run the command again to start over"


def _check_resumable_run(path: Path) -> None:
    """Answer at once, before the heavy imports: a compare folder, or a finished run."""
    from cl_spoof.rundir import CompareDir, RunDir, RunDirError

    if CompareDir(path).is_compare():
        raise CLSpoofError(f"{path}: a compare folder, not a run; continue it with "
                           f"`cl-spoof compare --resume {path}`")
    run = RunDir(path)
    if run.is_run() and run.finished():
        raise RunDirError(f"{path}: the run already finished; nothing to resume (report it: "
                          f"`cl-spoof report {path}`)")


def print_run_summary(summary: Any) -> None:
    """The EER matrix and headline metrics of a finished run."""
    from cl_spoof.metrics.definitions import summary_parts

    matrix = summary.matrix.reset_index()
    console.print(df_to_rich(matrix, title=f"EER (%) after each stage — {summary.out_dir}"))
    parts = summary_parts(summary.metrics)
    console.print("; ".join(parts) + f"; {summary.seconds:.0f} s", highlight=False, soft_wrap=True)
    if any("forgetting" in p for p in parts):
        console.print(FORGETTING_NOTE, highlight=False, soft_wrap=True)


#: ``--label`` of ``run`` and ``compare``.
LabelOption = Annotated[str | None, typer.Option(
    "--label", help="What reports call the run (default: the strategy and the hyper-parameters "
                    "that differ from its defaults, e.g. 'dfwf (kd_weight=3)'); on compare, "
                    "added to every run's label.")]


def _check_label(label: str | None) -> str | None:
    """``--label`` checked before any work (a label is one line of printable text)."""
    from cl_spoof.rundir import check_label

    return None if label is None else check_label(label)


def _report_labels(items: list[str] | None) -> dict[Path, str]:
    """``report --label PATH=TEXT`` (repeatable) as a mapping run or compare folder -> text."""
    out: dict[Path, str] = {}
    for item in items or []:
        path, sep, text = item.partition("=")
        if not sep or not path or not text:
            raise CLSpoofError(f"--label {item!r}: expected PATH=LABEL (a run or compare "
                               "directory given to the report, then its label)")
        out[Path(path)] = text
    return out


@app.command("run")
@user_errors
def run_cmd(
    config: ConfigArg = None,
    strategy: Annotated[str | None, typer.Option(
        help=f"Strategy, overriding the config: {', '.join(STRATEGIES)}.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run directory (default: runs/<time>-<strategy>-seed<N>); must not exist.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed, overriding the config.")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue an interrupted run directory after its last completed stage.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
    config_opt: ConfigOpt = None,
    sets: SetOpt = None,
    data: DataOpt = None,
    allow_missing: AllowMissingOpt = False,
    label: LabelOption = None,
) -> None:
    """Train experience by experience and report the EER of every attack after each stage.

    Data-parallel over N processes: `torchrun --nproc_per_node N -m cl_spoof run CONFIG`
    (Gloo on CPU, NCCL on GPUs; train.batch_size is the global batch).
    """
    config = _config_path(config, config_opt)
    overrides = _overrides(sets, data, allow_missing)
    label = _check_label(label)
    if resume is not None:
        if config is not None or strategy or out or seed is not None or overrides \
                or label is not None:
            raise CLSpoofError("--resume takes the run directory's own config.yaml and label: "
                               "give no CONFIG, --strategy, --out, --seed, --set, --data or "
                               "--label with it")
        _check_resumable_run(resume)

    from cl_spoof.infra.context import RunContext
    from cl_spoof.rundir import RunDir
    from cl_spoof.workflows.run import default_run_dir, run_experiment

    if resume is not None:
        cfg, out_dir = RunDir(resume).read_config(), resume
    else:
        cfg = _load_cfg(config, overrides, strategy, seed)
        out_dir = out or default_run_dir(cfg)
    try:
        with _blaming(overrides), RunContext.join(cfg.train.device,
                                                  cfg.train.dist_timeout) as ctx:
            out_dir = ctx.broadcast_object(out_dir)  # rank 0's time stamp names the run
            if not ctx.is_main:  # rank 0 writes and reports; the others only train
                run_experiment(cfg, out_dir, resume=resume is not None, ctx=ctx, label=label,
                               wait=wait)
                return
            with progress_bar() as bar:
                events = CliEvents(bar, cfg.metrics.undertrained_eer)
                summary = run_experiment(cfg, out_dir, events.as_run_events(),
                                         resume=resume is not None, ctx=ctx, label=label,
                                         wait=wait)
    except KeyboardInterrupt as exc:
        raise Interrupted(_run_hint(out_dir), exc) from None
    print_run_summary(summary)
    console.print(f"next: cl-spoof report {out_dir}", highlight=False, soft_wrap=True)


def _comparison_notes() -> None:
    console.print("EER in %; " + FORGETTING_NOTE + ".", highlight=False, soft_wrap=True)


@app.command("init")
@user_errors
def init_cmd(
    run_dir: Annotated[Path, typer.Argument(
        help="The run directory to make (must not exist).")],
    from_: Annotated[Path, typer.Option(
        "--from", help="The pretrained model: an official AASIST/AASIST-L file, a cl-spoof "
                       "checkpoint, or a state dict of the config's preset (model.init).")],
    config: Annotated[Path | None, typer.Option(
        help="YAML config whose data, model and training the run uses (default: the demo "
             "config).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE overriding the config (repeatable), e.g. "
                      "model.preset=aasist_l.")] = None,
) -> None:
    """Start a run from a pretrained model: evaluate it (stage 0) on the config's test data.

    The run holds stage 0 alone (scores, checkpoint, EER matrix); `cl-spoof add-attack`
    then teaches it new attacks, stage 1, 2, ...
    """
    import json

    from cl_spoof.workflows.run import run_experiment
    from cl_spoof.workflows.setup import load_run_config

    # --from is model.init (a JSON string is a YAML string, whatever the path holds)
    cfg = load_run_config(config, [f"model.init={json.dumps(str(from_))}", *(set_ or [])])
    try:
        with progress_bar() as bar:
            summary = run_experiment(cfg, run_dir, CliEvents(bar).as_run_events(),
                                     only_stage_0=True)
    except KeyboardInterrupt as exc:
        raise Interrupted(_run_hint(run_dir), exc) from None
    print_run_summary(summary)
    console.print(f"next: cl-spoof add-attack {run_dir} --name NAME --spoof FOLDER")


#: The strategies ``compare`` runs when ``--strategies`` is not given.
DEFAULT_COMPARE = "naive,dfwf,lwf,ewc,replay,joint"


@app.command("compare")
@user_errors
def compare_cmd(
    config: ConfigArg = None,
    strategies: Annotated[str | None, typer.Option(
        help=f"Comma-separated strategies: {', '.join(STRATEGIES)} "
             f"(default: {DEFAULT_COMPARE}).", show_default=False)] = None,
    seeds: Annotated[int | None, typer.Option(
        min=1, help="Number of seeds (0, 1, ..., N-1; default 3).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        help="Compare directory (default: runs/compare-<time>); must not exist.")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Complete an interrupted compare directory (its own config and runs); with "
             "--strategies or --seeds, grow it (finished runs kept, new ones run).")] = None,
    jobs: Annotated[int, typer.Option(
        min=1, help="Runs at once, each in its own process (and GPU, round robin, if any); "
                    "torch threads per run: train.threads, or the cores divided by JOBS.")] = 1,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
    report: Annotated[bool, typer.Option(
        "--report", help="Build the report (forgetting curves, heatmaps, tables) at the end, "
                         "in <compare directory>/report.")] = False,
    config_opt: ConfigOpt = None,
    sets: SetOpt = None,
    data: DataOpt = None,
    allow_missing: AllowMissingOpt = False,
    label: LabelOption = None,
) -> None:
    """Every strategy on the same benchmark, same initial weights and data order per seed.

    Under `torchrun --nproc_per_node N -m cl_spoof compare ...` every run is
    data-parallel over the N processes instead of using --jobs.
    """
    from datetime import datetime

    config = _config_path(config, config_opt)
    overrides = _overrides(sets, data, allow_missing)
    label = _check_label(label)
    if resume is not None:
        if config is not None or out is not None or overrides or label is not None:
            raise CLSpoofError("--resume takes the compare directory's own config and label: "
                               "give no CONFIG, --out, --set, --data or --label with it")
        _check_resumable_compare(resume)

    from cl_spoof.infra.context import RunContext
    from cl_spoof.reporting.render import comparison_display
    from cl_spoof.workflows.compare import load_compare_spec, parse_strategies, run_compare

    if resume is not None:
        cfg, names, seed_list = load_compare_spec(resume)
        out_dir = resume
        if strategies is not None:  # grown: what it has, then what is asked besides
            names += [n for n in parse_strategies(strategies) if n not in names]
        if seeds is not None:
            seed_list += [k for k in range(seeds) if k not in seed_list]
    else:
        names = parse_strategies(strategies or DEFAULT_COMPARE)
        cfg = _load_cfg(config, overrides)
        seed_list = list(range(3 if seeds is None else seeds))
        out_dir = out or Path("runs") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        with _blaming(overrides), RunContext.join(cfg.train.device,
                                                  cfg.train.dist_timeout) as ctx:
            out_dir = ctx.broadcast_object(out_dir)
            if not ctx.is_main:
                run_compare(cfg, names, seed_list, out_dir, resume=resume is not None,
                            jobs=jobs, ctx=ctx, label=label, wait=wait)
                return
            with progress_bar() as bar:
                events = CliEvents(bar, cfg.metrics.undertrained_eer)
                table = run_compare(cfg, names, seed_list, out_dir, events.as_run_events(),
                                    resume=resume is not None, jobs=jobs, ctx=ctx, label=label,
                                    wait=wait)
                if report:
                    from cl_spoof.reporting import build_report

                    events.on_stage("writing the report")
                    res = build_report([out_dir], out_dir / "report", wait=wait)
    except KeyboardInterrupt as exc:
        raise Interrupted(_compare_hint(out_dir), exc) from None
    console.print(df_to_rich(comparison_display(table),
                             title=f"Comparison over {len(seed_list)} seed(s) — {out_dir}"))
    _comparison_notes()
    if report:
        console.print(f"report: [bold]{escape(str(res.html))}[/]", highlight=False, soft_wrap=True)
    else:
        console.print(f"next: cl-spoof report {out_dir}", highlight=False, soft_wrap=True)


def _check_resumable_compare(path: Path) -> None:
    """A run directory given to ``compare --resume`` is named as one."""
    from cl_spoof.rundir import CompareDir, RunDir

    if not CompareDir(path).is_compare() and RunDir(path).is_run():
        raise CLSpoofError(f"{path}: a run directory, not a comparison; continue it with "
                           f"`cl-spoof run --resume {path}`")


@app.command("yardstick")
@user_errors
def yardstick_cmd(
    config: ConfigArg = None,
    yardsticks: Annotated[str, typer.Option(
        "--yardsticks", help="Comma-separated: lfcc (LFCC statistics), ltas (long-term "
                             "average spectrum, 64-ms frames), ltas128 (128-ms frames), "
                             "lfcc_bl and ltas_bl (lfcc and ltas of the clip band-limited to "
                             "0-4 kHz); each + logistic regression.")] = "lfcc,ltas",
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default: runs/yardstick-<time>); must not exist.")] = None,
    config_opt: ConfigOpt = None,
    sets: SetOpt = None,
    data: DataOpt = None,
    allow_missing: AllowMissingOpt = False,
) -> None:
    """Classical yardsticks on the config's own benchmark: same utterances, experiences and
    input as `run`, trained once on every experience's training data, scored per attack
    (and matched to each attack's sub-corpus with metrics.matched_by)."""
    from cl_spoof.workflows.setup import load_run_config
    from cl_spoof.workflows.yardstick import (
        default_yardstick_dir,
        parse_yardsticks,
        run_yardstick,
    )

    names = parse_yardsticks(yardsticks)
    cfg = load_run_config(_config_path(config, config_opt),
                          _overrides(sets, data, allow_missing), "--set")
    out_dir = out or default_yardstick_dir()
    try:
        with progress_bar() as bar:
            events = CliEvents(bar)
            result = run_yardstick(cfg, names, out_dir, events.on_stage, events.on_progress)
    except KeyboardInterrupt as exc:
        raise Interrupted(f"nothing was written to {out_dir}; run the same command again "
                          "(the yardsticks take seconds to minutes)", exc) from None
    console.print(df_to_rich(result.table(), title=f"EER (%) of the yardsticks — {out_dir}"))
    console.print(f"data: {result.data}; {result.seconds:.0f} s", highlight=False, soft_wrap=True)


def _compare_hint(out_dir: Path) -> str:
    """What to do after Ctrl-C stopped a comparison in ``out_dir``."""
    from cl_spoof.rundir import CompareDir

    if CompareDir(out_dir).is_compare():
        return f"finished runs and completed stages are kept; continue with " \
               f"`cl-spoof compare --resume {out_dir}`"
    return "no run had completed a stage, so nothing was kept"


@app.command("report")
@user_errors
def report_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Run and/or compare directories.")],
    out: Annotated[Path | None, typer.Option(
        help="Report folder (default: <first input>/report, refreshed each time); one that "
             "holds an earlier report only with --force.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
    labels: Annotated[list[str] | None, typer.Option(
        "--label", metavar="PATH=LABEL",
        help="Call the runs of input PATH so in this report (repeatable; the runs are not "
             "changed): a run directory gets LABEL, the runs of a compare directory get "
             "LABEL added to theirs.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the earlier report in an existing --out folder.")] = False,
) -> None:
    """Setup, comparison table, average-EER and per-attack charts, forgetting curves, DET
    curves, EER heatmaps: report.md and report.html (and the CSV behind every figure).

    Runs must share their data, attack order, splits and model; runs of one label are
    seeds of one setting (label runs apart with `run --label` or `--label PATH=LABEL`).
    """
    from cl_spoof.reporting import build_report
    from cl_spoof.reporting.render import comparison_display

    res = build_report(inputs, out or inputs[0] / "report", _report_labels(labels),
                       replace=force or out is None, wait=wait)
    console.print(df_to_rich(comparison_display(res.summary), title="Runs"))
    _comparison_notes()
    for note in res.notes:
        _note(str(note))
    console.print(f"report: {res.html}", highlight=False, soft_wrap=True)


def _undertrained_of(run_dir: Path) -> float | None:
    """``metrics.undertrained_eer`` of a run's config (None when it cannot be read)."""
    from cl_spoof.rundir import RunDir

    try:
        return RunDir(run_dir).read_config().metrics.undertrained_eer
    except (CLSpoofError, OSError):
        return None


def _add_attack_hint(run_dir: Path, name: str) -> str:
    """What a stop left of an add-attack: the run as it was, or (stopped just after it
    committed) the run with the new attack."""
    from cl_spoof.rundir import RunDir

    try:
        added = name in RunDir(run_dir).read_matrix().columns
    except CLSpoofError:
        added = False
    return f"{name} was added to {run_dir} before the stop" if added else \
        f"{run_dir} is unchanged"


@app.command("add-attack")
@user_errors
def add_attack_cmd(
    run_dir: Annotated[Path, typer.Argument(
        help="A finished run directory (or one of `cl-spoof init`: a pretrained model).")],
    name: Annotated[str, typer.Option(help="Name of the new attack (not yet in the run).")],
    spoof: Annotated[Path, typer.Option(help="Folder of the new attack's audio, or a manifest.")],
    bonafide: Annotated[Path | None, typer.Option(
        help="Bona fide audio (folder or manifest); default: the run's own data.")] = None,
    eval_fraction: Annotated[float, typer.Option(
        help="Share of the new audio held out for evaluation (by speaker when known).")] = 0.3,
    strategy: Annotated[str, typer.Option(
        help="How to learn it: dfwf (no old data needed), lwf, naive, or the run's own "
             "strategy (e.g. ewc on EWC runs).")
    ] = "dfwf",
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Change how the new stage trains (train.*, strategy hyper-parameters, seed; "
             "repeatable: --set train.epochs=2).", show_default=False)] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Where the run's own data is now, when it moved (data.source).",
        show_default=False)] = None,
) -> None:
    """Teach a trained detector a new attack; re-evaluate every earlier attack.

    Use it for a new attack on a detector you trained; for a new benchmark of your own
    data, write a manifest (`cl-spoof data manifest`) and `run` it.
    """
    from cl_spoof.rundir import RunDir
    from cl_spoof.workflows.add_attack import add_attack

    try:
        with progress_bar() as bar:
            events = CliEvents(bar, _undertrained_of(run_dir))
            summary, problems = add_attack(run_dir, name, spoof, bonafide, eval_fraction,
                                           strategy, events.as_run_events(),
                                           overrides=_overrides(sets, data), wait=wait)
    except KeyboardInterrupt as exc:
        raise Interrupted(_add_attack_hint(run_dir, name), exc) from None
    for line in problems:
        err_console.print(f"[yellow]skipped[/] {escape(str(line))}", highlight=False,
                          soft_wrap=True)
    print_run_summary(summary)
    console.print(f"report: {RunDir(run_dir).report_dir / 'report.html'}", highlight=False,
                  soft_wrap=True)


StageOpt = Annotated[int | None, typer.Option(
    "--stage", help="With a run directory: this stage's checkpoint instead of the last one.",
    show_default=False)]
CHECKPOINT_HELP = ("A checkpoint (a run's checkpoints/stage_<k>.pt) or a run directory (its "
                   "last completed stage; --stage K for another).")


@app.command("score")
@user_errors
def score_cmd(
    checkpoint: Annotated[Path, typer.Argument(help=CHECKPOINT_HELP)],
    paths: Annotated[list[Path], typer.Argument(
        help="Audio files, folders (searched recursively) and/or CSV manifests.")],
    out: Annotated[Path | None, typer.Option(
        help="Write 'path score decision' lines here (default: print them); an existing "
             "file only with --force, never an input or a file of a run directory.")] = None,
    threshold: Annotated[str, typer.Option(
        help="'eer' (the EER threshold stored in the checkpoint) or a number.")] = "eer",
    device: Annotated[str, typer.Option(help="'cpu', 'cuda' or 'auto'.")] = "cpu",
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing --out file.")] = False,
    stage: StageOpt = None,
) -> None:
    """Score audio (any format/sample rate; long files over sliding windows). Higher = bona fide.

    For EER, minDCF and t-DCF on a labelled set use `cl-spoof evaluate`.
    """
    from cl_spoof.workflows.score import (
        resolve_checkpoint,
        score_lines,
        score_paths,
        write_score_file,
    )

    ref = resolve_checkpoint(checkpoint, stage)
    try:
        with progress_bar() as bar:  # --out is checked before any work (score_paths)
            result = score_paths(ref.path, paths, threshold=threshold, device=device,
                                 progress=bar.tracker("scoring"), out=out, force=force)
    except KeyboardInterrupt as exc:
        raise Interrupted("no scores were written", exc) from None
    for path, why in result.failed:
        err_console.print(f"[yellow]skipped[/] {escape(f'{path}: {why}')}", highlight=False,
                          soft_wrap=True)
    if out is not None:
        try:
            write_score_file(out, result)
        except CLSpoofError as exc:  # e.g. the disk filled up: keep the computed scores
            for line in score_lines(result):
                typer.echo(line)
            raise CLSpoofError(f"{exc} (the scores were printed to standard output "
                               "instead)") from None
    else:
        for line in score_lines(result):
            typer.echo(line)
    s = result.summary
    err_console.print(f"{s.bonafide} bona fide, {s.spoof} spoof, {s.failed} failed; threshold "
                      f"{s.threshold:.4f} ({s.threshold_origin})"
                      + (f"; scores written to {out}" if out else ""), highlight=False,
                      soft_wrap=True)


@app.command("evaluate")
@user_errors
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Argument(help=CHECKPOINT_HELP)],
    data: Annotated[Path, typer.Argument(
        help="A labelled set: a CSV manifest, a corpus root of any known layout, or a config "
             "(its data section: its test split of its attacks).")],
    split: Annotated[str | None, typer.Option(
        help="The split evaluated, or 'all' (default: a config's data.test_split, else "
             "'eval').")] = None,
    stage: StageOpt = None,
    layout: Annotated[str | None, typer.Option(
        help="Read DATA with this reader instead of detecting the layout.")] = None,
    asv_scores: Annotated[Path | None, typer.Option(
        "--asv-scores", help="The organisers' ASVspoof 2019 ASV score file of DATA's "
                             "partition: adds min t-DCF.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Write a new folder: the score file, metrics.json and a DET plot (det.png).")
    ] = None,
    score_format: Annotated[str | None, typer.Option(
        "--format", help="Score file format of --out: asvspoof2019 (utt_id attack key score) "
                         "or asvspoof5 (with its key file); default: the checkpoint's.")
    ] = None,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Evaluate the files present (a partial download).")] = False,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Change a key of a config DATA (repeatable).",
        show_default=False)] = None,
    device: Annotated[str, typer.Option(help="'cpu', 'cuda' or 'auto'.")] = "cpu",
    batch_size: Annotated[int | None, typer.Option(
        min=1, help="Clips per batch (default: the run's train.eval_batch_size).")] = None,
    whole_file: Annotated[bool, typer.Option(
        "--whole-file", help="Score every whole file, as `score` does (the mean over windows "
                             "of the input length, half a window apart), not its start.")
    ] = False,
) -> None:
    """Per-attack and pooled EER, minDCF, actDCF, Cllr and min t-DCF of a checkpoint on a
    labelled set, e.g. another corpus than it was trained on.

    Clips are prepared as the run prepared its test clips (its sample rate, level and
    input length, from the start of each file), or, with --whole-file, windows cover
    each whole file.
    """
    from cl_spoof.config import SCORE_FORMATS
    from cl_spoof.metrics.definitions import METRICS
    from cl_spoof.workflows.evaluate import (
        STAGE_KEYS,
        evaluate,
        evaluation_outputs,
        write_evaluation,
    )

    if score_format is not None and score_format not in SCORE_FORMATS:
        raise CLSpoofError(f"--format {score_format!r}: use {' or '.join(SCORE_FORMATS)}"
                           + did_you_mean(score_format, SCORE_FORMATS))
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CLSpoofError(f"{out}: exists and is not an empty folder; choose another --out "
                           "(nothing was overwritten)")
    if out is not None:
        from cl_spoof.rundir import results_folder_of

        inside = results_folder_of(out)
        if inside is not None:
            raise CLSpoofError(f"{out}: {inside}; cl-spoof never writes there: choose a "
                               "folder outside it (nothing was written)")
    try:
        with progress_bar() as bar:
            events = CliEvents(bar)
            result = evaluate(checkpoint, data, stage=stage, split=split, layout=layout,
                              allow_missing=allow_missing, asv_scores=asv_scores,
                              overrides=list(sets or []), device=device,
                              batch_size=batch_size, progress=events.on_progress,
                              whole_file=whole_file)
            written = write_evaluation(result, out, score_format) if out is not None else []
    except KeyboardInterrupt as exc:
        raise Interrupted("nothing was written", exc) from None
    import pandas as pd

    rows = [{"attack": a, "utterances": result.counts[a], "EER %": v}
            for a, v in result.attacks.items()]
    rows.append({"attack": "bona fide", "utterances": result.counts["bonafide"],
                 "EER %": float("nan")})
    console.print(f"{result.checkpoint} on {result.data}", highlight=False, soft_wrap=True)
    console.print(df_to_rich(pd.DataFrame(rows), title="EER (%) per attack"))
    parts = [METRICS[k].summary.format(v) for k in STAGE_KEYS  # type: ignore[union-attr]
             if (v := result.metrics[k]) is not None and METRICS[k].summary]
    console.print("; ".join(parts), highlight=False, soft_wrap=True)
    for key, why in result.not_available.items():
        console.print(f"{METRICS[key].label}: not available; {why}", highlight=False,
                      soft_wrap=True)
    console.print(f"inputs: {result.prepared}", highlight=False, soft_wrap=True)
    if written:
        console.print(f"written: {', '.join(str(p) for p in written)}", highlight=False,
                      soft_wrap=True)
    elif out is None:
        names = ", ".join(evaluation_outputs(score_format or "asvspoof2019"))
        console.print(f"(--out FOLDER writes {names})", highlight=False, soft_wrap=True)


@data_app.command("demo")
@user_errors
def data_demo(
    out: Annotated[Path | None, typer.Option(
        help="Corpus folder (default: the per-user cache, reused when complete).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the corpus.")] = 0,
) -> None:
    """Build the demo corpus (ASVspoof 2019 LA layout) from the embedded LibriSpeech excerpt."""
    from cl_spoof.data import read_asvspoof2019_la
    from cl_spoof.data.checks import check_table
    from cl_spoof.data.table import counts_table
    from cl_spoof.demo.corpus import ensure_demo_corpus

    with progress_bar() as bar:
        root = ensure_demo_corpus(out, seed=seed, progress=bar.tracker("building demo corpus"))
    report = check_table(read_asvspoof2019_la(root))
    console.print(df_to_rich(counts_table(report.table), title=f"demo corpus — {root}"))
    if not report.ok:
        err_console.print(escape(report.summary(root)), highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
    console.print(f"{len(report.table)} utterances, no problems found")


@app.command("demo")
@user_errors
def demo_cmd(
    strategies: Annotated[str, typer.Option(
        help="Comma-separated strategies to compare.")] = "naive,dfwf,joint",
    seeds: Annotated[int, typer.Option(min=1, help="Number of seeds.")] = 1,
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default: runs/demo-<time>); must not exist.")] = None,
    jobs: Annotated[int, typer.Option(
        min=0, help="Runs at once, each in its own process with the cores divided by JOBS; "
                    "0: one per CPU core, at most one per run.")] = 0,
) -> None:
    """The main job: demo corpus -> compare strategies -> forgetting-curve report."""
    from datetime import datetime

    from cl_spoof.reporting import build_report
    from cl_spoof.reporting.render import comparison_display
    from cl_spoof.workflows.compare import parse_strategies, run_compare, side_by_side
    from cl_spoof.workflows.setup import load_run_config

    names = parse_strategies(strategies)
    cfg = load_run_config(None)
    out_dir = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        with progress_bar() as bar:
            events = CliEvents(bar, cfg.metrics.undertrained_eer)
            events.on_stage(f"demo: {', '.join(names)} x {seeds} seed(s) on the demo corpus")
            table = run_compare(cfg, names, list(range(seeds)), out_dir / "compare",
                                events.as_run_events(),
                                jobs=jobs or side_by_side(len(names) * seeds))
            events.on_stage("writing the report")
            res = build_report([out_dir / "compare"], out_dir / "report")
    except KeyboardInterrupt as exc:
        raise Interrupted(_compare_hint(out_dir / "compare"), exc) from None
    console.print(df_to_rich(comparison_display(table), title="Demo: strategies compared"))
    _comparison_notes()
    console.print(f"report: [bold]{escape(str(res.html))}[/]", highlight=False, soft_wrap=True)


def _hide_deprecation_warnings() -> None:
    """Drop library DeprecationWarnings from the terminal.

    Avalanche's Replay warns on every experience through a decorator that resets
    the warning filters, so an ordinary filter does not hold; this hides them at
    display time, for the CLI only.
    """
    show = warnings.showwarning

    def quiet(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if not issubclass(category, DeprecationWarning):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = quiet


def main() -> None:
    """Console-script entry point (``python -m cl_spoof`` too)."""
    from cl_spoof.infra.signals import install_stop_handlers

    install_stop_handlers()  # SIGTERM stops as Ctrl-C does; a second signal cannot cut it
    _hide_deprecation_warnings()
    if _rank_prefix():
        # Under torchrun: a rank's uncaught error goes into torchrun's failure summary.
        from torch.distributed.elastic.multiprocessing.errors import record

        record(app)()
    else:
        app()
