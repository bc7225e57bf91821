"""What every command shares: the consoles, the one-line error rule (exit 2), the progress
bar, and the --config / --set options."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from funnelrec.errors import FunnelrecError

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Experiment TOML file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set split.kind=leave_last_out."),
]


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


def guard(fn: Callable[[], T]) -> T:
    """Run a library call; a user error becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except FunnelrecError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}".lstrip(": "))
    raise AssertionError("unreachable")


@contextmanager
def progress() -> Iterator[Callable[[str, int, int], None]]:
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update
