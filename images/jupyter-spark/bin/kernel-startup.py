# sparkbox: every Python kernel in the Jupyter container starts with `spark`
# (a SparkSession) and `sc` (its SparkContext) connected to the cluster.
#
# The driver starts in the background as the kernel starts (the Jupyter
# server also keeps one kernel started ahead, see sbx_kernels), so the first
# cell that uses `spark` finds it ready or nearly so; the kernel answers at
# once meanwhile. The driver JVM starts without spark-submit's launcher JVM
# and with the image's class data sharing archive, which its executors use
# too (sbx_driver). Notebook
# drivers use dynamic allocation: an idle notebook holds no executors, and
# so no cores. Settings in spark-defaults.conf (sparkbox.toml's [apps] conf)
# win over these defaults. SPARKBOX_EAGER_SPARK=0 starts the driver only
# when `spark` or `sc` is first used.
# The master, driver host and ports come from spark-defaults.conf, which the
# container's entrypoint writes from the cluster's settings.


def _sparkbox_setup():
    import os
    import threading

    # Executors only while a notebook has tasks; an executor that holds
    # shuffle files is let go after a minute idle.
    notebook_defaults = {
        "spark.dynamicAllocation.enabled": "true",
        "spark.dynamicAllocation.shuffleTracking.enabled": "true",
        "spark.dynamicAllocation.shuffleTracking.timeout": "60s",
        "spark.dynamicAllocation.minExecutors": "0",
        "spark.dynamicAllocation.executorIdleTimeout": "30s",
    }

    def app_name():
        cluster = os.environ.get("SPARKBOX_CLUSTER", "sparkbox")
        # Jupyter Server names the notebook of each kernel it starts.
        notebook = os.environ.get("JPY_SESSION_NAME", "")
        if notebook:
            return "%s: %s" % (cluster, os.path.basename(notebook))
        return "%s: kernel %d" % (cluster, os.getpid())

    def create():
        from pyspark.sql import SparkSession

        try:
            import sbx_driver  # /opt/sparkbox/python, on the path by sparkbox.pth

            sbx_driver.start_gateway()
            defaults = sbx_driver.spark_defaults() or {}
            extra = sbx_driver.executor_defaults()
        except Exception:  # noqa: BLE001 - the usual launcher remains
            defaults, extra = {}, {}
        builder = SparkSession.builder.appName(app_name())
        for key, value in list(notebook_defaults.items()) + list(extra.items()):
            if key not in defaults:
                builder = builder.config(key, value)
        return builder.getOrCreate()

    def wait_for_master(url, patience=180.0):
        """Until the master accepts connections (at most `patience` s).
        The Jupyter server starts together with the master, and so does the
        kernel it keeps ready: a driver that finds no master tries again
        only 20 s later (three times, then it stops for good)."""
        import socket
        import time

        addresses = []
        for part in url[len("spark://"):].split(",") if url.startswith("spark://") else []:
            host, _, port = part.strip().rpartition(":")
            if host and port.isdigit():
                addresses.append((host.strip("[]"), int(port)))
        deadline = time.monotonic() + patience
        while addresses and time.monotonic() < deadline:
            for address in addresses:
                try:
                    socket.create_connection(address, timeout=1).close()
                    return
                except OSError:
                    pass
            time.sleep(0.25)

    def settle(patience=10.0):
        """Until IPython has taken this file's folder off sys.path again.
        It puts the folder first while it runs the file and removes it
        after; an import in another thread meanwhile walks sys.path as it
        shifts and may skip an entry (seen: "No module named 'pyspark'")."""
        import sys
        import time

        try:
            here = os.path.dirname(os.path.realpath(__file__))
        except NameError:
            here = "/opt/sparkbox/bin"
        deadline = time.monotonic() + patience
        while here in sys.path and time.monotonic() < deadline:
            time.sleep(0.005)

    def stopped(real):
        try:
            return real.sparkContext._jsc is None or real.sparkContext._jsc.sc().isStopped()
        except Exception:  # noqa: BLE001 - the driver JVM is gone
            return True

    state = {}
    starter = None
    if os.environ.get("SPARKBOX_MASTER_URL") and os.environ.get("SPARKBOX_EAGER_SPARK", "1") != "0":

        def run():
            try:
                settle()
                wait_for_master(os.environ["SPARKBOX_MASTER_URL"])
                state["session"] = create()
            except BaseException as e:  # noqa: BLE001 - raised again on first use
                state["error"] = e

        starter = threading.Thread(target=run, name="sparkbox-driver-start", daemon=True)
        starter.start()

    def session():
        real = None
        if starter is not None:
            starter.join()
            real = state.get("session")
            if real is not None and stopped(real):
                # Stopped meanwhile (by the user, or by the driver itself
                # when it lost the master): pyspark forgets it, and a new
                # one starts below.
                try:
                    real.stop()
                except Exception:  # noqa: BLE001 - the JVM may be gone too
                    pass
                real = None
        if real is None:
            # Not started in the background, or that start failed: start
            # here, so the error (if any) is the real one, in the cell.
            real = create()
        else:
            # pyspark sets its Ctrl-C handler (cancel the running jobs) only
            # in the main thread; the background start could not.
            import signal

            context = real.sparkContext

            def cancel(signum, frame):
                try:
                    context.cancelAllJobs()
                finally:
                    raise KeyboardInterrupt()

            try:
                signal.signal(signal.SIGINT, cancel)
            except ValueError:
                pass  # not the main thread
        try:
            namespace = get_ipython().user_ns  # noqa: F821 - IPython's builtin
            if isinstance(namespace.get("spark"), _Lazy):
                namespace["spark"] = real
            if isinstance(namespace.get("sc"), _Lazy):
                namespace["sc"] = real.sparkContext
        except NameError:
            pass
        return real

    class _Lazy:
        """Stands in for `spark` or `sc` until first use."""

        def __init__(self, pick, label):
            self._pick = pick
            self._label = label

        def __getattr__(self, item):
            return getattr(self._pick(session()), item)

        def __repr__(self):
            return "<%s: connects to %s on first use>" % (
                self._label,
                os.environ.get("SPARKBOX_MASTER_URL", "the cluster"),
            )

    return (
        _Lazy(lambda s: s, "SparkSession `spark`"),
        _Lazy(lambda s: s.sparkContext, "SparkContext `sc`"),
    )


spark, sc = _sparkbox_setup()
del _sparkbox_setup
