"""One way to start Spark for every colisten job (the graph build, the recommendation export).

`spark_session` builds the SparkSession from a master URL and a few settings (`[graph]
spark_master`, `spark_driver_memory`, `threads`); local masters bind to 127.0.0.1 with no UI, so a
test or a laptop run touches no network. A `spark://` master is checked for a TCP answer first:
an unreachable one is a clear error at once, where Spark itself would retry for a minute and then
fail a job with a stack trace.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from colisten.errors import ColistenError
from colisten.io import write_text_atomic

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkUnavailableError(ColistenError):
    """Spark was asked for but PySpark, Java or the master cannot be reached."""


def spark_session(
    master: str,
    *,
    driver_memory: str = "4g",
    threads: int | None = None,
    app_name: str = "colisten",
    what: str = "[graph] spark_master",
    connect_timeout_s: float = 5.0,
) -> SparkSession:
    """The active SparkSession, or a new one on `master`.

    `what` names the setting the master came from, for error messages. Local masters bind to
    127.0.0.1 with no UI (no network) and their Python workers run this interpreter.
    """
    check_master(master, what=what, timeout_s=connect_timeout_s)
    try:
        with warnings.catch_warnings():  # pyspark warns about pandas 3, which colisten does not mind
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark.sql import SparkSession
    except ImportError as e:
        raise SparkUnavailableError(
            "the Spark engine needs PySpark: pip install 'colisten[spark]' (and Java 17)"
        ) from e
    local = master.startswith("local")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_quiet_log4j_config()}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python UDFs (the recommendation export) must run where colisten is installed: this
        # interpreter, not whatever `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        cores = threads or os.cpu_count() or 1
        if threads and master == "local[*]":
            builder = builder.master(f"local[{threads}]")
        builder = (
            builder.config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            # 200 shuffle partitions (the default) is tuned for clusters; locally it is pure overhead.
            .config("spark.sql.shuffle.partitions", str(max(4, 4 * cores)))
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            session = builder.getOrCreate()
    except Exception as e:  # pyspark raises its own runtime errors when the JVM cannot start
        raise SparkUnavailableError(f"Spark could not start (is Java 17 installed and on PATH?): {e}") from e
    session.sparkContext.setLogLevel("ERROR")
    return session


def check_master(master: str, *, what: str = "[graph] spark_master", timeout_s: float = 5.0) -> None:
    """SparkUnavailableError unless a `spark://host:port[,host:port]` master answers on TCP.

    Other masters (local[*], yarn, k8s://...) are left to Spark."""
    if not master.startswith("spark://"):
        return
    errors = []
    for hostport in master[len("spark://") :].split(","):
        host, _, port = hostport.strip().rpartition(":")
        if not host or not port.isdigit():
            raise SparkUnavailableError(f"{what} = {master!r}: expected spark://HOST:PORT")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return
        except OSError as e:
            errors.append(f"{host}:{port}: {e.strerror or e}")
    raise SparkUnavailableError(
        f"Spark master {master} is unreachable ({'; '.join(errors)}; waited up to {timeout_s:g} s): "
        f"start it or point {what} at a running master"
    )


def _quiet_log4j_config() -> Path:
    """A log4j2 config that prints only errors (Spark's default prints warnings meant for admins)."""
    path = Path(tempfile.gettempdir()) / "colisten-spark-log4j2.properties"
    if not path.exists():
        write_text_atomic(
            path,
            "rootLogger.level = error\n"
            "rootLogger.appenderRef.stderr.ref = console\n"
            "appender.console.type = Console\n"
            "appender.console.name = console\n"
            "appender.console.target = SYSTEM_ERR\n"
            "appender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n",
        )
    return path


def stop_spark() -> None:
    """Stop the active SparkSession, if any (the CLI does this when the job ends)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
