"""The Spark driver's class archive: Spark's classes mapped from one file, not loaded from jars.

Most of a Spark start is the JVM loading, parsing and verifying some ten thousand classes from
the jars. Java's application class-data sharing (AppCDS) keeps them, parsed and verified, in an
archive that every later JVM maps into memory at start (and JVMs running at once share it). The
archive belongs to one JVM, one class path and one set of driver options: the file name carries
a fingerprint of all three, so a changed jar, Java or option means another name, and a JVM
without a matching archive simply starts the usual way.

``lab spark-archive`` (run by ``make setup``) builds it once, in the jars folder: a fresh
process in a throwaway LAB_HOME runs the training it is given (the bronze, silver, gold and
maintenance lessons, :func:`lab_env.jobs.runner.train_class_archive`), and the JVM writes the
classes it loaded when it exits. docs/production.md has the figures.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError

PREFIX = "spark-classes-"
# The JVM's class-data sharing messages (a skipped class while it writes the archive, an archive
# it cannot use) are not the learner's business: with no archive it just starts the usual way.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> Path | None:
    java_home = os.environ.get("JAVA_HOME")
    found = shutil.which("java", path=f"{java_home}/bin") if java_home else shutil.which("java")
    return Path(found).resolve() if found else None


def archive_path(settings: Settings, class_path: list[str]) -> Path | None:
    """Where the archive for this JVM, class path and driver options is (None: no Java)."""
    from lab_env.lake.jars import spark_jars_folder

    java = _java()
    if java is None:
        return None
    digest = hashlib.sha256()
    stat = java.stat()
    parts = [str(java), str(stat.st_size), str(stat.st_mtime_ns),
             settings.spark_driver_java_options]
    folder = spark_jars_folder()
    spark_jars = sorted(folder.glob("*.jar")) if folder else []
    for jar in [*spark_jars, *map(Path, class_path)]:
        parts += [str(jar), str(jar.stat().st_size) if jar.exists() else "-"]
    digest.update("\0".join(parts).encode())
    return settings.jars_dir.expanduser().resolve() / f"{PREFIX}{digest.hexdigest()[:16]}.jsa"


def driver_options(settings: Settings, class_path: list[str]) -> str:
    """The JVM options that map the archive, when it exists and is wanted; else empty."""
    if not settings.spark_class_archive:
        return ""
    path = archive_path(settings, class_path)
    if path is None or not path.is_file():
        return ""
    return f"-XX:SharedArchiveFile={path} {QUIET}"


def training_env(settings: Settings, archive: Path, home: Path) -> dict[str, str]:
    """The environment of the throwaway session that writes ``archive``: a lakehouse of its own
    in ``home``, and the settings that make the driver's class path and options (the archive
    is only used by a JVM with the same ones)."""
    from lab_env.lake.jars import OVERRIDES

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")} | {
        "LAB_HOME": str(home / "lakehouse"),
        "LAB_PROFILE": "local",
        "LAB_JARS_DIR": str(settings.jars_dir),
        "LAB_SPARK_CLASS_ARCHIVE": "false",
        "LAB_SPARK_DRIVER_JAVA_OPTIONS":
            f"{settings.spark_driver_java_options} -XX:ArchiveClassesAtExit={archive} {QUIET}",
    }
    for field in OVERRIDES.values():  # a single jar of the user's own (LAB_ICEBERG_JAR, ...)
        jar = getattr(settings, field)
        if jar is not None:
            env[f"LAB_{field.upper()}"] = str(jar)
    return env


def build(
    training: str, settings: Settings | None = None, class_path: list[str] | None = None
) -> tuple[Path, bool]:
    """Build the archive unless it exists; return its path and whether it was built now.

    ``training`` is the Python code a fresh process runs, with :func:`training_env`, to do the
    work whose classes the archive keeps; it ends with its JVM's normal exit, which is when the
    JVM writes the archive (:func:`lab_env.lake.spark.exit_jvm`).
    """
    from lab_env.lake.jars import spark_jars

    settings = settings or get_settings()
    class_path = spark_jars(settings) if class_path is None else class_path
    path = archive_path(settings, class_path)
    if path is None:
        raise LabError("Java was not found; Spark needs Java 17.",
                       "sudo apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME).")
    if path.is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with tempfile.TemporaryDirectory(prefix="lab-spark-archive-") as home:
        done = subprocess.run([sys.executable, "-c", training], cwd=home,
                              env=training_env(settings, partial, Path(home)),
                              capture_output=True, text=True, check=False)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"The Spark class archive could not be built ({said[0][:200]}).",
                       "run `lab doctor`; Spark works without the archive, only slower to start.")
    partial.replace(path)
    for stale in path.parent.glob(f"{PREFIX}*.jsa"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return path, True

