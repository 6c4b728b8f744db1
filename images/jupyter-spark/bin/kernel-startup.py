# sparkbox: every Python kernel in the Jupyter container starts with `spark`
# (a SparkSession) and `sc` (its SparkContext) connected to the cluster.
# Nothing is started until first use, so kernels start as fast as without
# Spark; on first use both names are replaced by the real objects.
# The master, driver host and ports come from spark-defaults.conf, which the
# container's entrypoint writes from the cluster's settings.


def _sparkbox_setup():
    import os

    def app_name():
        cluster = os.environ.get("SPARKBOX_CLUSTER", "sparkbox")
        # Jupyter Server names the notebook of each kernel it starts.
        notebook = os.environ.get("JPY_SESSION_NAME", "")
        if notebook:
            return "%s: %s" % (cluster, os.path.basename(notebook))
        return "%s: kernel %d" % (cluster, os.getpid())

    def session():
        from pyspark.sql import SparkSession

        real = SparkSession.builder.appName(app_name()).getOrCreate()
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
