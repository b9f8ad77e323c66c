"""Run the solution notebooks as production jobs with papermill: ``lab run``.

Each run gets an id and a folder, ``LAB_HOME/runs/<dates>/<run_id>/``, holding every
executed notebook, so a failed step can be opened and read cell by cell.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lab_env import processes
from lab_env.config import Settings, get_settings
from lab_env.dates import check_range
from lab_env.errors import LabError
from lab_env.jobs.metrics import record_step
from lab_env.lake.lock import lakehouse_lock
from lab_env.paths import DBT_PROJECT, SOLUTIONS

if TYPE_CHECKING:
    import nbformat
    from jupyter_client.manager import AsyncKernelManager

SAMPLE_START = dt.date(2025, 1, 1)
SAMPLE_END = dt.date(2025, 3, 31)
KERNEL = "python3"
# Cells only a reader needs; production jobs leave them out (docs/production.md).
LESSON_TAG = "lesson"
# What the run's kernel process (and its JVM) print, beside the executed notebooks.
KERNEL_LOG = "kernel.log"


@dataclass(frozen=True)
class Step:
    """One production step: a layer and the solution notebook that builds it."""

    name: str
    notebook: Path
    # "module:function" that loads what the step's first cell would wait seconds for; a run's
    # kernel calls it on a thread of its own while the step before works (:func:`preload`).
    preload: str = ""


STEPS: tuple[Step, ...] = (
    Step("bronze", SOLUTIONS / "02_bronze.ipynb"),
    Step("silver", SOLUTIONS / "03_silver.ipynb"),
    Step("gold", SOLUTIONS / "04_gold.ipynb"),
    # The gate: audits the run, then publishes gold from the run's audit branch (or stops it).
    # Great Expectations' import costs some 5 s of CPU: it happens while gold works.
    Step("quality", SOLUTIONS / "06_quality.ipynb", preload="lab_env.quality.suites:load_gx"),
)
# Steps a run takes only when named (`lab run --steps ... dbt`), after the default ones: dbt
# builds its DuckDB marts from the silver that the run has just written (lab_env.jobs.dbt).
EXTRA_STEPS: tuple[Step, ...] = (Step("dbt", DBT_PROJECT),)
# Gold writes to an Iceberg branch that only the quality step publishes (write-audit-publish).
GATED = "gold"
GATE = "quality"


class StepFailed(LabError):
    """A notebook raised: names the notebook, the cell and the executed copy to open."""

    def __init__(
        self, notebook: Path, output: Path, cell: int | None, error: str, ename: str = ""
    ) -> None:
        where = f"cell {cell}" if cell is not None else "a cell"
        super().__init__(
            f"{notebook.name} failed at {where}: {error}.",
            f"open the executed copy {output} to see the cell and its traceback.",
        )
        self.notebook = notebook
        self.output = output
        self.cell = cell
        self.error = error
        self.ename = ename  # the type name of what the cell raised, e.g. "QualityGateFailed"


def new_run_id() -> str:
    """A sortable, unique run id such as ``20260123T101500Z-3f9a1c``."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def notebook_parameters(notebook: Path) -> dict[str, object]:
    """The names and defaults of the notebook's ``parameters`` cell."""
    import papermill

    params = papermill.inspect_notebook(str(notebook))
    return {name: spec["default"] for name, spec in params.items()}


def job_cells(notebook: Path) -> nbformat.NotebookNode:
    """The notebook as a production job runs it: without the cells tagged ``lesson``.

    Lesson cells only show things to a reader (plots, ``show()``, counts printed, engine
    timings, demonstrations on throwaway data); the cells that build the layer, and the checks
    that guard its data, are left untagged and always run.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    nb.cells = [c for c in nb.cells if LESSON_TAG not in c.get("metadata", {}).get("tags", [])]
    return nb


class Kernel:
    """One Python kernel that executes notebooks one after another, and keeps its Spark warm.

    Starting a kernel and a JVM is the largest fixed cost of a step; a run pays it once, and
    loads what the next step waits for while a step works (:meth:`preload`).
    Before each notebook the kernel's namespace is emptied and its ``LAB_*`` environment set
    for that notebook (:meth:`prepare`), so a notebook sees what it would see in a kernel of
    its own; only the imported modules and the SparkSession carry over. ``env`` (from
    :func:`kernel_env`) is what the kernel process starts with on top of this process's
    environment, which is never changed. What the kernel process itself prints (ipykernel's
    and the JVM's messages, not cell output, which stays in the executed copies) goes to
    ``log`` when given.
    """

    def __init__(
        self, cwd: Path = SOLUTIONS, log: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.cwd = cwd
        self.log = log
        self.env = dict(env or {})
        self.km: AsyncKernelManager | None = None

    @classmethod
    def running(cls, km: AsyncKernelManager) -> Kernel:
        """A Kernel over a kernel process that is already running, connected through ``km``
        (lab_env.course.kept keeps one between checks); not for use as ``with``, which starts
        one."""
        kernel = cls()
        kernel.km = km
        return kernel

    def __enter__(self) -> Kernel:
        from jupyter_core.utils import run_sync

        self.km = _kernel_manager(self.log, self.env)(kernel_name=KERNEL)
        run_sync(self.km.start_kernel)(cwd=str(self.cwd))
        return self

    def __exit__(self, *exc: object) -> None:
        from jupyter_core.utils import run_sync

        if self.km is not None:
            run_sync(self.km.shutdown_kernel)(now=True)
            self.km = None

    def preload(self, spec: str) -> None:
        """Call ``spec`` ("module:function") on a thread of the kernel; return at once."""
        self.run_code(f"from lab_env.jobs.runner import preload\npreload({spec!r})\n")

    def prepare(self, env: dict[str, str | None]) -> None:
        """Empty the namespace and set (or, for None, unset) these variables in the kernel."""
        code = (
            "import os as _os\n"
            f"_env = {env!r}\n"
            "for _k, _v in _env.items():\n"
            "    _os.environ.pop(_k, None) if _v is None else _os.environ.__setitem__(_k, _v)\n"
            "from lab_env.config import get_settings as _get_settings\n"
            "_get_settings.cache_clear()\n"
            "get_ipython().run_line_magic('reset', '-f')\n"
        )
        self.run_code(code)

    def exit_jvm(self) -> None:
        """Stop the kernel's Spark session and have its JVM exit the normal way, running its
        exit hooks (a JVM started with ``-XX:ArchiveClassesAtExit`` writes its class archive
        then); return once it is gone. Without this a kernel's JVM dies with the kernel."""
        self.run_code(
            "from lab_env.lake.spark import exit_jvm as _exit_jvm\n_exit_jvm()\n"
        )

    def run_code(self, code: str) -> None:
        """Execute ``code`` in the kernel (not in any notebook); raise a LabError if it fails."""
        assert self.km is not None, "the kernel is not started: use `with Kernel()`"
        client = self.km.blocking_client()
        client.start_channels()
        try:
            reply = client.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
        finally:
            client.stop_channels()
        if reply["content"]["status"] != "ok":
            content = reply["content"]
            raise LabError(
                f"The kernel could not be prepared: {content.get('ename')}: "
                f"{content.get('evalue')}.",
                "check that lab_env imports in .venv/bin/python.",
            )


def preload(spec: str) -> None:
    """In a run's kernel: call ``spec`` ("module:function", :attr:`Step.preload`) on a thread of
    its own, while the step now running works. The module is imported here, on the kernel's main
    thread; the thread runs the function (an import that takes seconds). A step that imports
    the same module before it is done waits for it, as Python's import lock makes it."""
    import importlib

    module, function = spec.split(":")
    target = getattr(importlib.import_module(module), function)
    threading.Thread(target=target, name=f"lab-preload-{function}", daemon=True).start()


def execute_notebook(
    notebook: Path,
    output: Path,
    parameters: dict[str, object] | None = None,
    *,
    allow_errors: bool = False,
    cwd: Path | None = None,
    kernel_log: Path | None = None,
    job: bool = False,
    kernel: Kernel | None = None,
    env: Mapping[str, str | None] | None = None,
) -> nbformat.NotebookNode:
    """Execute ``notebook`` with papermill, save the executed copy at ``output`` and return it.

    Parameters the notebook does not declare are left out, so one set of run parameters
    can be passed to every step. On an error, raise :class:`StepFailed` (unless
    ``allow_errors``) naming the failing cell and the executed copy.

    ``job``: run it as a production job, without its lesson cells (:func:`job_cells`).
    ``kernel``: run it in this already started kernel (``env`` is set in it first); without
    one, papermill starts a kernel for this notebook alone, in ``cwd``, with ``env`` (from
    :func:`kernel_env`) in its environment, and with ``kernel_log`` what that kernel process
    prints goes to that file instead of this terminal.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    declared = notebook_parameters(notebook)
    params = {k: v for k, v in (parameters or {}).items() if k in declared}
    output.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = {}
    if kernel is not None:
        kernel.prepare(dict(env or {}))
        options["km"] = kernel.km
    else:
        started = {k: v for k, v in (env or {}).items() if v is not None}
        options["kernel_manager_class"] = _kernel_manager(kernel_log, started)
    if allow_errors:
        options["allow_errors"] = True
    source = job_cells(notebook) if job else str(notebook)
    try:
        return papermill.execute_notebook(
            source,
            str(output),
            parameters=params,
            kernel_name=KERNEL,
            cwd=str(cwd or notebook.parent),
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,
            **options,
        )
    except PapermillExecutionError as exc:
        if allow_errors:
            import nbformat

            return nbformat.read(str(output), as_version=4)
        raise StepFailed(
            notebook, output, exc.exec_count, f"{exc.ename}: {exc.evalue}", exc.ename
        ) from None


def _kernel_manager(
    log: Path | None = None, env: Mapping[str, str] | None = None
) -> type[AsyncKernelManager]:
    """A kernel manager class whose kernels die with this process, start with ``env`` on top of
    this process's environment and, with ``log``, write their own stdout and stderr to that
    file."""
    extra = dict(env or {})
    from jupyter_client.manager import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        scratch: Path | None = None

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: object) -> None:
            # Kernels run in a session of their own: killing a run's process group would leave
            # its kernel (and the kernel's JVM, which exits when the kernel does) working on.
            # Elsewhere than Linux, ipykernel's own parent check stops it a moment later.
            kw["preexec_fn"] = processes.die_with_parent(signal.SIGKILL)
            env = dict(kw.get("env") or os.environ) | extra  # type: ignore[call-overload]
            kw["env"] = env
            if "SPARK_LOCAL_DIRS" not in env:
                # Spark's temp folders go here, and go with the kernel: a kernel is killed
                # at the end of its notebooks, and its JVM with it, before Spark's exit
                # hooks could delete them (a graceful stop costs 2-3 s per kernel).
                self.scratch = Path(tempfile.mkdtemp(prefix="lab-kernel-"))
                kw["env"] = env | {"SPARK_LOCAL_DIRS": str(self.scratch)}
            if log is None:
                await super()._async_launch_kernel(kernel_cmd, **kw)
                return
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as sink:  # the kernel (and the JVM it starts) keep their own copy
                streams = {"stdout": sink, "stderr": sink}
                await super()._async_launch_kernel(kernel_cmd, **{**kw, **streams})

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if self.scratch is not None and not restart:
                shutil.rmtree(self.scratch, ignore_errors=True)
                self.scratch = None

    return RunKernelManager


@dataclass
class TableChange:
    """What one step did to one Iceberg table, read from the snapshots it committed."""

    table: str
    snapshots: int
    added_records: int
    deleted_records: int
    total_records: int


@dataclass
class StepResult:
    name: str
    notebook: str
    output: str
    seconds: float
    ok: bool
    tables: list[TableChange] = field(default_factory=list)
    error: str = ""
    # The data was refused (the quality gate blocked the publish, or dbt's tests failed): a
    # retry of the same data fails the same way. False for a crash, which a retry may get past.
    refused: bool = False


@dataclass
class RunSummary:
    run_id: str
    start: str
    end: str
    full_refresh: bool
    folder: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)


def _snapshot_ids(settings: Settings) -> dict[str, set[int]]:
    """Every table's snapshot ids, to tell afterwards which commits a step made."""
    from lab_env.lake.catalog import get_catalog

    catalog = get_catalog(settings)
    seen: dict[str, set[int]] = {}
    for (namespace,) in catalog.list_namespaces():
        for ident in catalog.list_tables(namespace):
            name = ".".join(ident)
            seen[name] = {s.snapshot_id for s in catalog.load_table(name).snapshots()}
    return seen


def _changes(
    settings: Settings, before: dict[str, set[int]], run_id: str | None = None
) -> list[TableChange]:
    """What the commits made since ``before`` (of run ``run_id``, when given) did to each table.

    ``total_records`` counts the rows at the step's last commit, on the ref it wrote: a gated
    gold step commits to the run's audit branch, and the quality step publishes that same
    snapshot to main. Only the commits whose lineage names this run count, so a run that
    overlaps another is not credited with the other's work.
    """
    from lab_env.lake.catalog import get_catalog
    from lab_env.lake.lineage import RUN_ID

    catalog = get_catalog(settings)
    changes = []
    for name, ids in sorted(_snapshot_ids(settings).items()):
        if not ids - before.get(name, set()):
            continue  # no commit since: no need to load the table again
        table = catalog.load_table(name)
        new = [
            s
            for s in table.snapshots()
            if s.snapshot_id not in before.get(name, set())
            and (run_id is None or (s.summary and s.summary.get(RUN_ID) == run_id))
        ]
        if not new:
            continue
        summaries = [s.summary.additional_properties if s.summary else {} for s in new]
        last = max(new, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
        changes.append(
            TableChange(
                table=name,
                snapshots=len(new),
                added_records=sum(int(s.get("added-records", 0)) for s in summaries),
                deleted_records=sum(int(s.get("deleted-records", 0)) for s in summaries),
                total_records=table.scan(snapshot_id=last.snapshot_id).count(),
            )
        )
    return changes


def run_parameters(
    start: dt.date,
    end: dt.date,
    run_id: str,
    full_refresh: bool = False,
    assets: Sequence[str] = (),
    evolve_schema: bool = False,
) -> dict[str, object]:
    """The papermill parameters every step receives (each notebook takes those it declares)."""
    return {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "run_id": run_id,
        "full_refresh": full_refresh,
        "assets": list(assets),  # bronze fetches these assets' history only; empty: all
        "evolve_schema": evolve_schema,  # silver adds new source fields as columns
        "measure_engines": False,  # gold's Spark-vs-DuckDB timing is the lesson's, not the job's
    }


def step_env(step: Step, params: dict[str, object], gated: bool) -> dict[str, str | None]:
    """The ``LAB_*`` variables one step's kernel sees on top of the run's.

    A gated gold step writes to the run's audit branch (``LAB_WAP_BRANCH``), for the quality
    step to publish; every other step, and gold without the gate, sees no branch.
    """
    if step.name == GATED and gated:
        from lab_env.quality.suites import audit_branch

        return {"LAB_WAP_BRANCH": audit_branch(str(params["run_id"]))}
    return {"LAB_WAP_BRANCH": None}


def run_step(
    step: Step,
    params: dict[str, object],
    folder: Path,
    settings: Settings | None = None,
    *,
    gated: bool = True,
    kernel: Kernel | None = None,
    env: Mapping[str, str] | None = None,
) -> StepResult:
    """Execute one step's notebook as a job into ``folder`` and report what it did to the tables.

    ``gated``: the quality step follows, so gold writes to the run's audit branch for it to
    publish (write-audit-publish); without it gold writes main directly. ``kernel``: the run's
    kernel; without one the step starts its own with ``env`` (from :func:`kernel_env`; an
    Airflow task runs one step).
    """
    settings = settings or get_settings()
    before = _snapshot_ids(settings)
    output = folder / step.notebook.name
    began = time.perf_counter()
    error, refused = "", False
    if step in EXTRA_STEPS:  # not a notebook, so no kernel: the dbt project (lab_env.jobs.dbt)
        from lab_env.jobs.dbt import DbtTestsFailed, job

        output, failure = job(params, folder, settings)
        error, refused = str(failure or ""), isinstance(failure, DbtTestsFailed)
    else:
        with contextlib.ExitStack() as stack:
            if kernel is None:
                kernel = stack.enter_context(Kernel(log=folder / KERNEL_LOG, env=env))
            try:
                execute_notebook(step.notebook, output, params, job=True, kernel=kernel,
                                 env=step_env(step, params, gated))
            except StepFailed as exc:
                from lab_env.quality.gate import QualityGateFailed

                # The kernel's exception arrives as its type's name: the gate's own class.
                error, refused = str(exc), exc.ename == QualityGateFailed.__name__
    result = StepResult(
        step.name,
        step.notebook.name,
        str(output),
        time.perf_counter() - began,
        not error,
        _changes(settings, before, str(params.get("run_id") or "") or None),
        error,
        refused,
    )
    # Duration, rows, verdict and gold's freshness, for Prometheus (docs/operations.md).
    record_step(result, folder, settings)
    return result


# The lessons whose work the Spark class archive is trained on (`lab spark-archive`): the ones
# that use Spark most, every cell as a learner runs it, with their own parameters.
ARCHIVE_LESSONS = (
    "02_bronze.ipynb", "03_silver.ipynb", "04_gold.ipynb", "07_maintenance.ipynb",
)
ARCHIVE_TRAINING = "from lab_env.jobs.runner import train_class_archive\ntrain_class_archive()\n"


def train_class_archive(settings: Settings | None = None) -> None:
    """The work whose classes the Spark class archive keeps (lab_env.lake.spark_archive runs
    :data:`ARCHIVE_TRAINING` in a throwaway LAB_HOME): the :data:`ARCHIVE_LESSONS` in one
    kernel, then its JVM's normal exit, which is when a JVM started with
    ``-XX:ArchiveClassesAtExit`` writes the archive."""
    settings = settings or get_settings()
    folder = settings.lab_home / "archive-training"
    with kernel_env(settings) as env, Kernel(log=folder / KERNEL_LOG, env=env) as kernel:
        for name in ARCHIVE_LESSONS:
            execute_notebook(SOLUTIONS / name, folder / name, kernel=kernel)
        kernel.exit_jvm()


def step_named(name: str) -> Step:
    """The production step called ``name`` (bronze, silver, gold, quality, dbt)."""
    for step in (*STEPS, *EXTRA_STEPS):
        if step.name == name:
            return step
    names = ", ".join(s.name for s in (*STEPS, *EXTRA_STEPS))
    raise LabError(f"No step named {name!r}.", f"use one of {names}.")


@contextlib.contextmanager
def kernel_env(settings: Settings, *, record_progress: bool = True) -> Iterator[dict[str, str]]:
    """The environment notebook kernels start with while this block runs (on top of this
    process's, which is left as it is): pass it to :class:`Kernel` or :func:`execute_notebook`.

    Kernels start in another folder, so LAB_HOME is handed over as an absolute path; a replay
    server runs for the block and kernels are pointed at it unless a live API is configured;
    production runs (``record_progress=False``) keep their checks out of the learner's progress.
    """
    env = {"LAB_HOME": str(settings.lab_home), "LAB_RECORD_PROGRESS": str(record_progress).lower()}
    if settings.coincap_url:
        yield env
        return
    from lab_env.source.replay import replay_server

    with replay_server() as url:
        yield env | {"LAB_COINCAP_URL": url}


def run_pipeline(
    start: dt.date,
    end: dt.date,
    *,
    full_refresh: bool = False,
    assets: Sequence[str] = (),
    evolve_schema: bool = False,
    steps: Sequence[Step] | None = None,
    run_id: str | None = None,
    progress: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> RunSummary:
    """Run ``steps`` (default: bronze, silver, gold) for ``start``..``end``; stop at a failure.

    ``progress`` receives a line as each step starts and ends (``lab run`` prints them; a
    notebook can pass ``print``).
    """
    check_range(start, end)
    settings = settings or get_settings()
    run_id = run_id or new_run_id()
    folder = settings.run_folder(start, end, run_id)
    summary = RunSummary(run_id, str(start), str(end), full_refresh, str(folder))
    params = run_parameters(start, end, run_id, full_refresh, assets, evolve_schema)
    chosen = list(steps or STEPS)
    gated = any(step.name == GATE for step in chosen)  # gold goes to a branch only if published
    say = progress or (lambda line: None)
    say(f"lab run {start} .. {end}  run_id={run_id}{'  (full refresh)' if full_refresh else ''}")
    # One kernel for every step: the JVM and the imports are paid for once per run.
    with (
        lakehouse_lock(settings, run_id, f"run_pipeline {start}..{end}"),  # one writer per LAB_HOME
        kernel_env(settings, record_progress=False) as env,
        Kernel(log=folder / KERNEL_LOG, env=env) as kernel,
    ):
        for index, step in enumerate(chosen, start=1):
            say(f"[{index}/{len(chosen)}] {step.name}: {step.notebook.name} ...")
            if index < len(chosen) and chosen[index].preload:
                kernel.preload(chosen[index].preload)  # the next step's, while this one works
            result = run_step(step, params, folder, settings, gated=gated, kernel=kernel)
            summary.steps.append(result)
            if result.ok:
                say(f"  done in {result.seconds:.1f}s")
                continue
            say(f"  failed: {result.error}")
            if skipped := [s.name for s in chosen[index:]]:
                say(f"  not run (depend on {step.name}): {', '.join(skipped)}")
            break
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary
