"""The ``cl-spoof`` command line. The only place that prints or exits."""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a 2-core machine spinning threads
# made torch many times slower whenever another process was busy. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import functools  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cl_spoof.errors import CLSpoofError, os_error_message
from cl_spoof.strategies.registry import STRATEGIES

app = typer.Typer(
    help="cl-spoof: continual learning of fake-speech (spoofing) detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Utterance tables: manifests, checks, the demo corpus.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
DEBUG = False  # --debug: show the traceback of an error


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
            unexpected = not isinstance(exc, CLSpoofError | OSError | MemoryError | Interrupted
                                        | KeyboardInterrupt)
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
            elif isinstance(exc, MemoryError):
                _error_line("out of memory; lower train.batch_size, train.eval_batch_size, "
                            "train.workers or data.num_samples")
                code = 2
            elif isinstance(exc, Interrupted | KeyboardInterrupt):
                from cl_spoof.infra.signals import stop_code

                hint = exc.hint if isinstance(exc, Interrupted) else "stopped"
                code = stop_code(exc.cause if isinstance(exc, Interrupted) else exc)
                how = " (SIGTERM)" if code == 143 else ""
                err_console.print(f"{_rank_prefix()}[bold yellow]interrupted{how}:[/] "
                                  f"{escape(hint)}", highlight=False, soft_wrap=True)
            else:
                _error_line(f"unexpected {type(exc).__name__}: {exc} (rerun with "
                            "`cl-spoof --debug ...` for the traceback, and please report it)")
                code = 1
            raise typer.Exit(code=code) from None

    return wrapper  # type: ignore[return-value]


def _rank_prefix() -> str:
    """``rank 1: `` in a torchrun job of several processes, else nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
        return f"rank {os.environ['RANK']}: "
    return ""


@app.callback()
def _root(ctx: typer.Context, debug: Annotated[bool, typer.Option(
        "--debug", help="Show the full traceback of an error.")] = False) -> None:
    """cl-spoof: continual learning of fake-speech (spoofing) detection."""
    global DEBUG
    DEBUG = debug
    if _rank_prefix() and ctx.invoked_subcommand not in ("run", "compare"):
        err_console.print(f"{_rank_prefix()}[bold red]error:[/] `cl-spoof "
                          f"{ctx.invoked_subcommand}` runs in one process; under torchrun only "
                          "`run` and `compare` (data-parallel) are supported", highlight=False)
        raise typer.Exit(code=2)


def progress_bar() -> Progress:
    """A rich progress display for long work."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def df_to_rich(df: pd.DataFrame, title: str | None = None) -> Table:
    """Render a DataFrame as a rich table (numbers right-aligned)."""
    table = Table(title=title, show_lines=False)
    for col in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[_fmt(v) for v in row])
    return table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "—" if pd.isna(value) else f"{value:.2f}"
    return str(value)


# --------------------------------------------------------------------------- data


@data_app.command("manifest")
@user_errors
def data_manifest(
    folder: Annotated[Path, typer.Argument(help="Folder of audio files (searched recursively).")],
    label: Annotated[str, typer.Option(help="'spoof' or 'bonafide'.")] = "spoof",
    attack: Annotated[str | None, typer.Option(help="Attack name (required for spoof).")] = None,
    split: Annotated[str, typer.Option(help="'train', 'dev' or 'eval'.")] = "train",
    speaker: Annotated[str, typer.Option(help="Speaker id for every file (optional).")] = "",
    out: Annotated[Path | None, typer.Option(help="Output CSV (default: stdout).")] = None,
) -> None:
    """Write a manifest (path,label,attack,speaker,split) for every audio file under FOLDER."""
    from cl_spoof.data.manifest import manifest_for_folder, write_manifest_for_folder

    if out is None:
        typer.echo(manifest_for_folder(folder, label, attack, split, speaker), nl=False)
        return
    n = write_manifest_for_folder(folder, out, label, attack, split, speaker)
    err_console.print(f"wrote {n} rows to {out}")


@data_app.command("check")
@user_errors
def data_check(
    source: Annotated[Path, typer.Argument(
        help="A corpus root (ASVspoof 2019 LA / 2021 LA / 2021 DF / 5, In-the-Wild, WaveFake, "
             "Fake-or-Real: layout detected), a CSV manifest, or a YAML config (checks its "
             "data.source or every data.sources entry).")],
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

    if source.suffix.lower() in (".yaml", ".yml"):
        from cl_spoof.benchmark.loading import read_sources_table, resolve_source
        from cl_spoof.workflows.setup import load_run_config

        data_cfg = load_run_config(source).data
        allow_missing = allow_missing or data_cfg.allow_missing
        table = (read_sources_table(data_cfg) if data_cfg.sources
                 else read_source(resolve_source(data_cfg)))
    else:
        table = read_source(source, layout=layout)
    with progress_bar() as bar:
        task = bar.add_task("checking audio", total=None)
        report = check_table(table, allow_missing=allow_missing,
                             progress=lambda i, n: bar.update(task, completed=i, total=n))
    console.print(df_to_rich(counts_table(report.table), title=f"{source}"))
    console.print(f"{len(report.table)} utterances")
    if allow_missing:
        console.print(f"dropped {report.dropped_missing} listed row(s) whose file is missing"
                      " (--allow-missing)")
    if not report.ok:
        err_console.print(report.summary(source), highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
    console.print("[green]no problems found[/]")


# ---------------------------------------------------------------------------- run


class CliEvents:
    """Draws a run's progress with rich: one line per stage, one bar for the current work."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task = bar.add_task("starting", total=None)

    def on_stage(self, text: str) -> None:
        self.bar.console.print(f"[bold cyan]>[/] {escape(text)}", highlight=False)

    def on_progress(self, desc: str, done: int, total: int) -> None:
        self.bar.update(self.task, description=desc, completed=done, total=total or None)

    def on_result(self, stage: int, attack: str, eers: dict[str, float]) -> None:
        shown = "  ".join(f"{a} {v:.1f}" for a, v in eers.items())
        self.bar.console.print(f"  EER % after learning {attack}: {shown}", highlight=False)

    def as_run_events(self) -> Any:
        from cl_spoof.workflows.events import RunEvents

        return RunEvents(on_stage=self.on_stage, on_progress=self.on_progress,
                         on_result=self.on_result)


def _load_cfg(config: Path | None, strategy: str | None, seed: int | None) -> Any:
    from cl_spoof.config import with_overrides
    from cl_spoof.workflows.setup import load_run_config, resolve

    cfg = load_run_config(config)
    if strategy is not None:
        cfg = with_overrides(cfg, strategy={"name": strategy})
    if seed is not None:
        cfg = with_overrides(cfg, seed=seed)
    return resolve(cfg)


def _run_hint(out_dir: Path) -> str:
    """What to do after Ctrl-C stopped a run in ``out_dir``."""
    from cl_spoof.rundir import RunDir

    run_dir = RunDir(out_dir)
    done = run_dir.completed_stages()
    if done:
        return (f"{done} completed stage(s) kept in {out_dir}; continue with "
                f"`cl-spoof run --resume {out_dir}`")
    if run_dir.is_run():
        return f"no new stage completed; {out_dir} is as it was (`cl-spoof run --resume " \
               f"{out_dir}` continues it)"
    return "no stage had completed, so nothing was kept; run the command again to start over"


def print_run_summary(summary: Any) -> None:
    """The EER matrix and headline metrics of a finished run."""
    matrix = summary.matrix.reset_index()
    console.print(df_to_rich(matrix, title=f"EER (%) after each stage — {summary.out_dir}"))
    from cl_spoof.metrics.definitions import summary_parts

    parts = summary_parts(summary.metrics)
    console.print("; ".join(parts) + f"; {summary.seconds:.0f} s")


@app.command("run")
@user_errors
def run_cmd(
    config: Annotated[Path | None, typer.Argument(
        help="YAML config (default: the demo config on the embedded demo corpus).")] = None,
    strategy: Annotated[str | None, typer.Option(
        help=f"Strategy, overriding the config: {', '.join(STRATEGIES)}.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run directory (default: runs/<time>-<strategy>-seed<N>); must not exist.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed, overriding the config.")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue an interrupted run directory after its last completed stage.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
) -> None:
    """Train experience by experience and report the EER of every attack after each stage.

    Data-parallel over N processes: `torchrun --nproc_per_node N -m cl_spoof run CONFIG`
    (Gloo on CPU, NCCL on GPUs; train.batch_size is the global batch).
    """
    from cl_spoof.infra.context import RunContext
    from cl_spoof.rundir import RunDir
    from cl_spoof.workflows.run import default_run_dir, run_experiment

    if resume is not None:
        if config is not None or strategy or out or seed is not None:
            raise CLSpoofError("--resume takes the run directory's own config.yaml: "
                               "give no CONFIG, --strategy, --out or --seed with it")
        cfg, out_dir = RunDir(resume).read_config(), resume
    else:
        cfg = _load_cfg(config, strategy, seed)
        out_dir = out or default_run_dir(cfg)
    try:
        with RunContext.join(cfg.train.device, cfg.train.dist_timeout) as ctx:
            out_dir = ctx.broadcast_object(out_dir)  # rank 0's time stamp names the run
            if not ctx.is_main:  # rank 0 writes and reports; the others only train
                run_experiment(cfg, out_dir, resume=resume is not None, ctx=ctx, wait=wait)
                return
            with progress_bar() as bar:
                summary = run_experiment(cfg, out_dir, CliEvents(bar).as_run_events(),
                                         resume=resume is not None, ctx=ctx, wait=wait)
    except KeyboardInterrupt as exc:
        raise Interrupted(_run_hint(out_dir), exc) from None
    print_run_summary(summary)


@app.command("compare")
@user_errors
def compare_cmd(
    config: Annotated[Path | None, typer.Argument(
        help="YAML config (default: the demo config on the embedded demo corpus).")] = None,
    strategies: Annotated[str, typer.Option(
        help=f"Comma-separated strategies: {', '.join(STRATEGIES)}.")
    ] = "naive,dfwf,lwf,ewc,replay,joint",
    seeds: Annotated[int, typer.Option(min=1, help="Number of seeds (0, 1, ..., N-1).")] = 3,
    out: Annotated[Path | None, typer.Option(
        help="Compare directory (default: runs/compare-<time>); must not exist.")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Complete an interrupted compare directory (its own config and runs).")] = None,
    jobs: Annotated[int, typer.Option(
        min=1, help="Runs at once, each in its own process (and GPU, round robin, if any); "
                    "torch threads per run: train.threads, or the cores divided by JOBS.")] = 1,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
) -> None:
    """Every strategy on the same benchmark, same initial weights and data order per seed.

    Under `torchrun --nproc_per_node N -m cl_spoof compare ...` every run is
    data-parallel over the N processes instead of using --jobs.
    """
    from datetime import datetime

    from cl_spoof.infra.context import RunContext
    from cl_spoof.reporting.render import comparison_display
    from cl_spoof.workflows.compare import load_compare_spec, parse_strategies, run_compare

    if resume is not None:
        if config is not None or out is not None:
            raise CLSpoofError("--resume takes the compare directory's own config: "
                               "give no CONFIG or --out with it")
        cfg, names, seed_list = load_compare_spec(resume)
        out_dir = resume
    else:
        names = parse_strategies(strategies)
        cfg = _load_cfg(config, None, None)
        seed_list = list(range(seeds))
        out_dir = out or Path("runs") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        with RunContext.join(cfg.train.device, cfg.train.dist_timeout) as ctx:
            out_dir = ctx.broadcast_object(out_dir)
            if not ctx.is_main:
                run_compare(cfg, names, seed_list, out_dir, resume=resume is not None,
                            jobs=jobs, ctx=ctx, wait=wait)
                return
            with progress_bar() as bar:
                table = run_compare(cfg, names, seed_list, out_dir,
                                    CliEvents(bar).as_run_events(), resume=resume is not None,
                                    jobs=jobs, ctx=ctx, wait=wait)
    except KeyboardInterrupt as exc:
        raise Interrupted(_compare_hint(out_dir), exc) from None
    console.print(df_to_rich(comparison_display(table),
                             title=f"Comparison over {len(seed_list)} seed(s) — {out_dir}"))
    console.print("EER in %; BWT < 0 and forgetting > 0 mean the detector forgot.")


@app.command("yardstick")
@user_errors
def yardstick_cmd(
    config: Annotated[Path | None, typer.Argument(
        help="YAML config (default: the demo config on the embedded demo corpus).")] = None,
    yardsticks: Annotated[str, typer.Option(
        "--yardsticks", help="Comma-separated: lfcc (LFCC statistics), ltas (long-term "
                             "average spectrum, 64-ms frames), ltas128 (128-ms frames); each "
                             "+ logistic regression.")] = "lfcc,ltas",
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default: runs/yardstick-<time>); must not exist.")] = None,
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
    cfg = load_run_config(config)
    out_dir = out or default_yardstick_dir()
    try:
        with progress_bar() as bar:
            events = CliEvents(bar)
            result = run_yardstick(cfg, names, out_dir, events.on_stage, events.on_progress)
    except KeyboardInterrupt as exc:
        raise Interrupted(f"nothing was written to {out_dir}; run the same command again "
                          "(the yardsticks take seconds to minutes)", exc) from None
    console.print(df_to_rich(result.table(), title=f"EER (%) of the yardsticks — {out_dir}"))
    console.print(f"data: {result.data}; {result.seconds:.0f} s")


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
        help="Report folder (default: <first input>/report).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
) -> None:
    """Forgetting curves, EER heatmaps, a strategy chart, report.md and report.html."""
    from cl_spoof.reporting import build_report
    from cl_spoof.reporting.render import comparison_display

    res = build_report(inputs, out or inputs[0] / "report", wait=wait)
    console.print(df_to_rich(comparison_display(res.summary), title="Strategies"))
    for note in res.notes:
        console.print(f"[yellow]note:[/] {escape(str(note))}", highlight=False)
    console.print(f"report: {res.html}")


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
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
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
) -> None:
    """Teach a trained detector a new attack; re-evaluate every earlier attack."""
    from cl_spoof.rundir import RunDir
    from cl_spoof.workflows.add_attack import add_attack

    try:
        with progress_bar() as bar:
            summary, problems = add_attack(run_dir, name, spoof, bonafide, eval_fraction,
                                           strategy, CliEvents(bar).as_run_events(),
                                           wait=wait)
    except KeyboardInterrupt as exc:
        raise Interrupted(_add_attack_hint(run_dir, name), exc) from None
    for line in problems:
        err_console.print(f"[yellow]skipped[/] {escape(str(line))}", highlight=False,
                          soft_wrap=True)
    print_run_summary(summary)
    console.print(f"report: {RunDir(run_dir).report_dir / 'report.html'}")


@app.command("score")
@user_errors
def score_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A run's checkpoints/stage_<k>.pt.")],
    paths: Annotated[list[Path], typer.Argument(
        help="Audio files, folders (searched recursively) and/or CSV manifests.")],
    out: Annotated[Path | None, typer.Option(
        help="Write 'path score decision' lines here (default: print them).")] = None,
    threshold: Annotated[str, typer.Option(
        help="'eer' (the EER threshold stored in the checkpoint) or a number.")] = "eer",
    device: Annotated[str, typer.Option(help="'cpu', 'cuda' or 'auto'.")] = "cpu",
) -> None:
    """Score audio (any format/sample rate; long files over sliding windows). Higher = bona fide."""
    from cl_spoof.infra.files import check_output_file
    from cl_spoof.workflows.score import score_lines, score_paths, write_score_file

    if out is not None:
        check_output_file(out)  # before the work, not after it
    try:
        with progress_bar() as bar:
            task = bar.add_task("scoring", total=None)
            result = score_paths(checkpoint, paths, threshold=threshold, device=device,
                                 progress=lambda i, n: bar.update(task, completed=i, total=n))
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
                      + (f"; scores written to {out}" if out else ""), highlight=False)


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
        task = bar.add_task("building demo corpus", total=None)
        root = ensure_demo_corpus(out, seed=seed,
                                  progress=lambda i, n: bar.update(task, completed=i, total=n))
    report = check_table(read_asvspoof2019_la(root))
    console.print(df_to_rich(counts_table(report.table), title=f"demo corpus — {root}"))
    if not report.ok:
        err_console.print(report.summary(root), highlight=False, soft_wrap=True)
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
) -> None:
    """The main job: demo corpus -> compare strategies -> forgetting-curve report."""
    from datetime import datetime

    from cl_spoof.reporting import build_report
    from cl_spoof.reporting.render import comparison_display
    from cl_spoof.workflows.compare import parse_strategies, run_compare
    from cl_spoof.workflows.setup import load_run_config

    names = parse_strategies(strategies)
    cfg = load_run_config(None)
    out_dir = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        with progress_bar() as bar:
            events = CliEvents(bar)
            events.on_stage(f"demo: {', '.join(names)} x {seeds} seed(s) on the demo corpus")
            table = run_compare(cfg, names, list(range(seeds)), out_dir / "compare",
                                events.as_run_events())
            events.on_stage("writing the report")
            res = build_report([out_dir / "compare"], out_dir / "report")
    except KeyboardInterrupt as exc:
        raise Interrupted(_compare_hint(out_dir / "compare"), exc) from None
    console.print(df_to_rich(comparison_display(table), title="Demo: strategies compared"))
    console.print("EER in %; BWT < 0 and forgetting > 0 mean the detector forgot.")
    console.print(f"report: [bold]{escape(str(res.html))}[/]")


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
