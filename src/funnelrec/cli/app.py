"""The ``funnelrec`` command line. Each command parses options, loads config, calls one library
function, and renders the result. User mistakes exit with code 2 and one line, no traceback."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler

from funnelrec.cli.common import ConfigOpt, SetOpt, console, err_console
from funnelrec.cli.common import fail as _fail
from funnelrec.cli.common import guard as _guard
from funnelrec.cli.common import progress as _progress
from funnelrec.cli.serve_options import (
    AdminTokenOpt,
    ApiKeyOpt,
    ArtifactsRootOpt,
    BatchWaitOpt,
    DocsOpt,
    LogBackupsOpt,
    LogMaxMbOpt,
    MaxBatchOpt,
    MaxUserEventsOpt,
    RateBurstOpt,
    RateLimitOpt,
)
from funnelrec.cli.tracking import TrackOpt, TrackUriOpt, open_tracker
from funnelrec.cli.train import Engine, run_under_torchrun, train_and_report
from funnelrec.config import load_config

app = typer.Typer(
    name="funnelrec",
    help="Multi-stage recommender funnel: recall, merge, evaluate, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where results and artifacts go.")] = Path("runs/demo"),
    interactions: Annotated[int, typer.Option(min=1000, help="Simulated rows.")] = 1_000_000,
    seed: Annotated[int, typer.Option()] = 0,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """The main job: simulate the default data, run the whole funnel, print the report."""
    from funnelrec.cli.report import print_report
    from funnelrec.eval.run import run_demo

    cfg = _guard(lambda: load_config(config, set_ or []))
    console.print(f"[bold]funnelrec demo[/bold]: simulating {interactions:,} interactions ...")
    with _progress() as progress:
        metrics = _guard(lambda: run_demo(out, interactions, seed, cfg, progress))
    print_report(console, metrics)
    console.print(f"metrics: {out / 'metrics.json'}  artifacts: {out / 'artifacts'}")


@app.command()
def run(
    data: Annotated[
        Path, typer.Option(help="Folder with interactions.(csv|parquet) [+ items, users].")
    ],
    out: Annotated[Path, typer.Option(help="Output folder for metrics.json and artifacts/.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    track: TrackOpt = None,
    track_uri: TrackUriOpt = None,
) -> None:
    """Evaluate the funnel on canonical data; write metrics.json and artifacts."""
    from funnelrec.cli.report import print_report
    from funnelrec.cli.tracking import track_run
    from funnelrec.eval.run import run_dir

    cfg = _guard(lambda: load_config(config, set_ or []))
    tracker = _guard(lambda: open_tracker(cfg.tracking, track, track_uri, out))
    with _progress() as progress:
        metrics = _guard(lambda: run_dir(data, out, cfg, progress))
    print_report(console, metrics)
    console.print(f"metrics: {out / 'metrics.json'}  artifacts: {out / 'artifacts'}")
    if tracker is not None:
        console.print(_guard(lambda: track_run(tracker, out, cfg, metrics)), highlight=False)


@app.command()
def train(
    data: Annotated[
        Path, typer.Option(help="Folder with interactions.(csv|parquet) [+ items, users].")
    ],
    out: Annotated[Path, typer.Option(help="Artifact folder for serve / recommend.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    track: TrackOpt = None,
    track_uri: TrackUriOpt = None,
    engine: Annotated[
        Engine,
        typer.Option(
            help="Where the ItemCF / Swing fits run: numba (this process) or spark "
            "(needs Java 17+; docs/scaling.md).",
        ),
    ] = Engine.NUMBA,
    master: Annotated[
        str, typer.Option(help="Spark master URL for --engine spark (local[*]: every core).")
    ] = "local[*]",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Data-parallel training processes: >1 relaunches this command under "
            "torchrun (docs/distributed.md).",
        ),
    ] = 1,
) -> None:
    """Production: fit the funnel on every row and write self-checked artifacts."""
    from funnelrec.pipeline.production import train_dir
    from funnelrec.spark.options import SparkOptions
    from funnelrec.train.distributed import launched_by_torchrun, process_group

    if workers > 1 and engine is Engine.SPARK:
        # Every rank would start its own Spark application for the same co-occurrence job.
        _fail("--workers and --engine spark do not combine: Spark parallelises the ItemCF fit")
    if workers > 1 and not launched_by_torchrun():
        raise typer.Exit(run_under_torchrun(workers))
    cfg = _guard(lambda: load_config(config, set_ or []))
    spark = SparkOptions(master=master) if engine is Engine.SPARK else None
    with process_group() as worker:
        if worker.rank != 0:
            # Every worker fits (the same collectives); only rank 0 keeps and reports.
            logging.getLogger().setLevel(logging.ERROR)
            with tempfile.TemporaryDirectory() as scratch:
                _guard(lambda: train_dir(data, Path(scratch) / "out", cfg, spark=spark))
            return
        train_and_report(data, out, cfg, spark, track, track_uri)


@app.command()
def recommend(
    artifacts: Annotated[Path, typer.Option(help="Artifact folder written by run/demo.")],
    users: Annotated[Path, typer.Option(help="CSV with user_id, or one id per line.")],
    out: Annotated[Path, typer.Option(help="Output CSV: user_id,item_id,rank,score,source.")],
    k: Annotated[int, typer.Option(help="Items per user.")] = 10,
    self_check: Annotated[
        bool,
        typer.Option("--self-check/--no-self-check", help="Re-score the golden set first."),
    ] = True,
) -> None:
    """Top-k items for every listed user (unknown users take the cold-start path). The
    artifact is verified and self-checked first, as serve does; a refused one exits 2."""
    from funnelrec.serve.batch import recommend_file

    frame = _guard(lambda: recommend_file(artifacts, users, k, out, check=self_check))
    console.print(f"wrote {frame.height} rows for {frame['user_id'].n_unique()} users to {out}")


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="Folder (or file) in the public layout.")],
    dst: Annotated[Path, typer.Argument(help="Output folder for canonical Parquet.")],
    format_: Annotated[str, typer.Option("--format", help="Layout name, e.g. movielens-100k.")],
) -> None:
    """Convert a public dataset layout to canonical Parquet tables."""
    from funnelrec.data.convert import convert as convert_fn

    report = _guard(lambda: convert_fn(format_, src, dst))
    console.print(report.summary(), highlight=False)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Output folder for canonical Parquet.")],
    interactions: Annotated[int, typer.Option(min=1000)] = 1_000_000,
    seed: Annotated[int, typer.Option()] = 0,
    long_term_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of users with periodic category interests (0 = off); their ground "
            "truth is written to periodic_interests.parquet.",
        ),
    ] = 0.0,
    span_days: Annotated[
        float | None,
        typer.Option(min=1.0, help="Days the log spans (default: the simulator's 60)."),
    ] = None,
    partitioned: Annotated[
        bool,
        typer.Option(
            help="Write interactions as a hive-partitioned folder, "
            "interactions/date=YYYY-MM-DD/part-0.parquet (docs/data.md)."
        ),
    ] = False,
) -> None:
    """Generate the synthetic dataset (users, items, sessions, impressions, funnel events)."""
    from pydantic import ValidationError

    from funnelrec.data.io import RawTables, write_tables
    from funnelrec.data.simulator import SimulatorConfig
    from funnelrec.data.simulator import simulate as simulate_fn

    settings = SimulatorConfig.for_interactions(interactions, seed=seed).model_dump()
    settings["long_term"] = {"share_of_users": long_term_share}
    if span_days is not None:
        settings["span_days"] = span_days
    try:
        config = SimulatorConfig.model_validate(settings)
    except ValidationError as e:
        _fail(f"simulate: {e.errors()[0]['msg']}")
    sim = simulate_fn(config)
    tables = RawTables(sim.interactions, sim.items, sim.users, ())
    _guard(lambda: write_tables(tables, out, partitioned=partitioned))
    if config.long_term.enabled:
        _guard(lambda: sim.periodic_interests.write_parquet(out / "periodic_interests.parquet"))
    console.print(
        f"wrote {sim.interactions.height:,} interactions, {sim.items.height:,} items, "
        f"{sim.users.height:,} users to {out}"
        + (
            f" ({sim.periodic_interests['user_id'].n_unique():,} with periodic interests)"
            if config.long_term.enabled
            else ""
        )
    )


@app.command()
def diagnose(
    run_dir: Annotated[
        Path, typer.Argument(help="Folder with diagnostics.jsonl written by a HealthMonitor.")
    ],
) -> None:
    """Summarise a run's training health: per-layer stats, findings and their remedies."""
    from funnelrec.train.diagnostics import render_summary, summarise_run

    summary = _guard(lambda: summarise_run(run_dir))
    console.print(render_summary(summary))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="The --out folder of funnelrec run / demo.")],
) -> None:
    """Render RUN_DIR/report/index.html: the funnel table, the accuracy-diversity trade-off of
    MMR and DPP, per-channel contribution and per-stage latency (PNG plots)."""
    from funnelrec.eval.report import write_report

    index = _guard(lambda: write_report(run_dir))
    console.print(f"wrote {index}")


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="A run folder (--out of run), or an MLflow run id.")],
    run_b: Annotated[str, typer.Argument(help="The run compared with RUN_A (B - A is shown).")],
    html: Annotated[Path | None, typer.Option("--html", help="Also write this HTML file.")] = None,
    track_uri: TrackUriOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Every list metric at every K.")] = False,
) -> None:
    """Two runs side by side: changed settings, guard decisions, and each metric of both with
    its bootstrap interval, the difference and whether the intervals overlap."""
    from funnelrec.cli.compare import compare_command

    _guard(
        lambda: compare_command(console, run_a, run_b, html=html, uri=track_uri, everything=all_)
    )


@app.command()
def experiment(
    out: Annotated[Path, typer.Option(help="Output folder: outcomes, analysis.json, report.")],
    control: Annotated[
        list[str] | None, typer.Option("--control-set", help="Override for the control arm.")
    ] = None,
    treatment: Annotated[
        list[str] | None, typer.Option("--treatment-set", help="Override for the treatment arm.")
    ] = None,
    config: ConfigOpt = None,
    days: Annotated[int, typer.Option(min=1, help="Simulated days, refitting daily.")] = 14,
    interactions: Annotated[int, typer.Option(min=1000, help="Simulated history rows.")] = 60_000,
    k: Annotated[int, typer.Option(min=1, help="Items per served list.")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    track: TrackOpt = None,
    track_uri: TrackUriOpt = None,
) -> None:
    """A/B test two funnel configurations on simulated users for DAYS days (each arm refitted
    on the accumulated log every day) and write the analysis and an HTML report."""
    from funnelrec.cli.tracking import track_experiment
    from funnelrec.experiment.environment import EnvironmentConfig
    from funnelrec.experiment.runner import arm_configs, run_simulated_experiment

    arms = _guard(lambda: arm_configs(config, control or [], treatment or []))
    settings = arms["control"].tracking
    tracker = _guard(lambda: open_tracker(settings, track, track_uri, out))
    if arms["control"] == arms["treatment"]:
        console.print("[yellow]both arms have the same configuration: an AA test[/yellow]")
    env = EnvironmentConfig(days=days, k=k, seed=seed)
    analysis = _guard(
        lambda: run_simulated_experiment(
            out, arms, interactions=interactions, environment=env, seed=seed, log=console.print
        )
    )
    console.print(f"[bold]decision: {analysis.decision}[/bold] ({analysis.reason})")
    console.print(f"report: {out / 'report.html'}")
    if tracker is not None:
        line = _guard(
            lambda: track_experiment(tracker, out, arms, analysis.decision, analysis.reason)
        )
        console.print(line, highlight=False)


@app.command()
def serve(
    artifacts: Annotated[Path, typer.Option(help="Artifact folder written by run/demo.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Event store, feature log, reload control (default: ARTIFACTS/../serve)"),
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="sqlite:///PATH or redis://HOST:PORT/DB (default: SQLite).")
    ] = None,
    feature_log: Annotated[Path | None, typer.Option(help="JSON-lines feature log.")] = None,
    clock: Annotated[
        str, typer.Option(help="wall, or artifact: 'now' starts at the artifact's last event.")
    ] = "wall",
    self_check: Annotated[
        bool, typer.Option("--self-check/--no-self-check", help="Re-score the golden set first.")
    ] = True,
    recall_budget_ms: Annotated[
        float, typer.Option(min=0.001, help="Budget of each recall channel.")
    ] = 250.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    admin_token: AdminTokenOpt = None,
    artifacts_root: ArtifactsRootOpt = None,
    api_key: ApiKeyOpt = None,
    rate_limit: RateLimitOpt = 0.0,
    rate_burst: RateBurstOpt = 20,
    max_events_per_user: MaxUserEventsOpt = 1000,
    feature_log_max_mb: LogMaxMbOpt = 100.0,
    feature_log_backups: LogBackupsOpt = 1,
    docs: DocsOpt = False,
    max_batch: MaxBatchOpt = 8,
    batch_wait: BatchWaitOpt = 0.5,
    experiments: Annotated[
        Path | None,
        typer.Option(help="Experiments file (TOML): assign every request's user, log the arm."),
    ] = None,
) -> None:
    """Serve recommendations over HTTP (POST /v1/recommend, /v1/events; /metrics; admin
    endpoints with --admin-token; docs/serving.md)."""
    from funnelrec.serve.launch import serve as serve_fn
    from funnelrec.serve.launch import serve_settings
    from funnelrec.serve.settings import Budgets

    if clock not in ("wall", "artifact"):
        _fail(f"--clock must be 'wall' or 'artifact', got '{clock}'")
    settings = _guard(
        lambda: serve_settings(
            artifacts=artifacts,
            state_dir=state_dir or artifacts.resolve().parent / "serve",
            store=store,
            feature_log=feature_log,
            self_check=self_check,
            budgets=Budgets(recall_ms=recall_budget_ms),
            admin_token=admin_token or None,
            artifacts_root=artifacts_root,
            api_key=api_key or None,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            max_events_per_user=max_events_per_user,
            feature_log_max_bytes=int(feature_log_max_mb * 2**20),
            feature_log_backups=feature_log_backups,
            docs=docs,
            max_batch=max_batch,
            batch_wait=batch_wait,
            experiments=experiments,
        )
    )
    if experiments is not None:  # read it now: a bad file is one line, before any worker
        from funnelrec.abtest.assignment import ExperimentPlan

        _guard(lambda: ExperimentPlan.from_toml(experiments))
    err_console.print(f"funnelrec serve: loading {artifacts} ...", highlight=False)
    _guard(
        lambda: serve_fn(
            settings,
            host=host,
            port=port,
            workers=workers,
            clock=clock,  # type: ignore[arg-type]
            log_level=log_level,
        )
    )


@app.command()
def consistency(
    artifacts: Annotated[Path, typer.Option(help="Artifact folder the requests were served from.")],
    log: Annotated[Path, typer.Option(help="The service's feature log (JSON lines).")],
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most N requests.")] = None,
    atol: Annotated[float, typer.Option(min=0.0, help="Absolute float tolerance.")] = 1e-5,
    show: Annotated[int, typer.Option(min=0, help="Mismatches listed.")] = 20,
) -> None:
    """Replay logged requests through the offline pipeline; exit 1 when any differs (or when
    none could be replayed: all served from another artifact)."""
    from funnelrec.serve.consistency import replay_feature_log

    report = _guard(lambda: replay_feature_log(artifacts, log, atol=atol, limit=limit))
    console.print(
        f"replayed {report.replayed}/{report.requests} logged requests against artifact "
        f"{report.artifact_id}; {report.mismatched_requests} differ",
        highlight=False,
    )
    for reason, count in report.skipped.items():
        console.print(f"  skipped {count}: {reason}", highlight=False)
    if report.max_abs_diff:
        worst = ", ".join(f"{c} {d:.2g}" for c, d in sorted(report.max_abs_diff.items()))
        console.print(f"  largest float difference per column: {worst}", highlight=False)
    for column, count in report.by_column().items():
        console.print(f"  {column}: {count} mismatches", highlight=False)
    for mismatch in report.mismatches[:show]:
        console.print(f"  {mismatch.describe()}", highlight=False, soft_wrap=True)
    if not report.ok or (report.requests and not report.replayed):
        raise typer.Exit(code=1)


@app.command()
def inspect(
    artifacts: Annotated[Path, typer.Argument(help="Artifact folder written by run/demo/train.")],
    user: Annotated[str | None, typer.Option(help="Print this user's trace as text.")] = None,
    why_not: Annotated[str | None, typer.Option(help="With --user: where was it lost?")] = None,
    k: Annotated[int, typer.Option(min=1, help="Items in the list.")] = 10,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8765,
    items: Annotated[Path | None, typer.Option(help="Items table with titles.")] = None,
    attribute: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, cold users.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Onboarding category.")] = None,
    self_check: Annotated[bool, typer.Option("--self-check/--no-self-check")] = True,
) -> None:
    """The browser inspector on an artifact (docs/inspector.md): a local server, or with
    --user one user's funnel trace as text."""
    from funnelrec.cli.inspect import InspectOptions, print_trace, serve_inspector

    options = InspectOptions(
        artifacts, user, why_not, k, port, items, self_check, (*(attribute or ()),), (*(tag or ()),)
    )
    if why_not is not None and user is None:
        _fail("--why-not needs --user")
    emit = lambda line: console.print(line, highlight=False, soft_wrap=True, markup=False)  # noqa: E731
    if user is not None:
        _guard(lambda: print_trace(options, emit))
    else:
        _guard(lambda: serve_inspector(options, emit))


def main() -> None:
    """Entry point of the ``funnelrec`` script."""
    app(prog_name="funnelrec", args=sys.argv[1:])
