#!/bin/sh
# The one RUN of the build (as root): installs Java, Python, a venv with the
# pinned packages, creates the `spark` user, installs bin/, measures the
# versions (the build fails when they differ from the matrix), and deletes the
# build context copy — the CA bundle and the recipe with it — and all caches.
# The optional CA bundle is trusted by apt and pip during this script only.
set -eu

CTX=/tmp/sparkbox-build
# Each part says how long it took (in the build's output: sparkbox build -v).
TP=$(date +%s)
took() { t=$(date +%s); echo "sparkbox: $1 in $((t - TP)) s"; TP=$t; }
# The recipe sparkbox writes into the context: the pins, EXPECTED_VERSIONS,
# EXTRA_PYTHON_PACKAGES and PIP_INDEX_URL, as shell assignments. (Proxies are
# the builder's predefined build args, in the environment already.)
if [ -f "$CTX/build/recipe.env" ]; then
    . "$CTX/build/recipe.env"
fi
: "${PYSPARK_VERSION:?PYSPARK_VERSION is required (build/recipe.env)}"
: "${PY4J_VERSION:?PY4J_VERSION is required (build/recipe.env)}"
: "${NUMPY_VERSION:?NUMPY_VERSION is required (build/recipe.env)}"
: "${PANDAS_VERSION:?PANDAS_VERSION is required (build/recipe.env)}"
: "${PYARROW_VERSION:?PYARROW_VERSION is required (build/recipe.env)}"
: "${JUPYTERLAB_VERSION:?JUPYTERLAB_VERSION is required (build/recipe.env)}"
JAVA_PACKAGE="${JAVA_PACKAGE:-openjdk-17-jre-headless}"
EXTRA_PYTHON_PACKAGES="${EXTRA_PYTHON_PACKAGES:-}"
EXPECTED_VERSIONS="${EXPECTED_VERSIONS:-}"

CA="$CTX/sparkbox-ca.crt"
VENV=/opt/sparkbox/venv
export DEBIAN_FRONTEND=noninteractive

# ---- apt ---------------------------------------------------------------
# No docs/man pages/translations in the image.
mkdir -p /etc/dpkg/dpkg.cfg.d
cat > /etc/dpkg/dpkg.cfg.d/01-sparkbox-nodoc <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/locale/*
EOF
# No fsync per file while unpacking: a crash of the build loses nothing
# worth keeping, and fsync is slow on overlay storage. Build-time only.
echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/02-sparkbox-build-unsafe-io
cat > /etc/apt/apt.conf.d/01-sparkbox <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "3";
EOF
# The JRE's postinst registers man pages with update-alternatives and fails
# if the directory is missing.
mkdir -p /usr/share/man/man1

set --
if [ -s "$CA" ]; then
    # Only matters for https sources / TLS-intercepting proxies.
    set -- -o "Acquire::https::CAInfo=$CA"
fi
apt-get "$@" update
# Python first: pip then installs the pinned packages in the background
# while apt installs Java (the two share nothing but the network).
apt-get "$@" install -y --no-install-recommends python3 python3-venv ca-certificates

# ---- python venv + pinned packages --------------------------------------
python3 -m venv "$VENV"

# pip: an empty PIP_INDEX_URL means "pip's own default".
if [ -z "${PIP_INDEX_URL:-}" ]; then unset PIP_INDEX_URL; else export PIP_INDEX_URL; fi
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
       PIP_DEFAULT_TIMEOUT=120 PIP_PROGRESS_BAR=off
if [ -s "$CA" ]; then
    # Trust pip's bundled roots plus the given CA (it may be a single
    # corporate CA or a whole bundle). Build-time only, in /tmp.
    certifi_pem=$("$VENV/bin/python" -c 'import pip._vendor.certifi as c; print(c.where())')
    cat "$certifi_pem" "$CA" > /tmp/sparkbox-pip-bundle.pem
    export PIP_CERT=/tmp/sparkbox-pip-bundle.pem
fi

# rfc3987: Jupyter's event schemas are checked by jsonschema, which without
# this package imports rfc3987-syntax, and that builds ~35 parsers at import:
# about 0.9 s of CPU at every start of the Jupyter server (and of nbconvert).
# With it installed jsonschema uses its regular expressions instead.
RFC3987_VERSION=1.3.8
# --no-compile: the byte code is compiled afterwards on every core (pip
# compiles one file after the other).
# shellcheck disable=SC2086  # EXTRA_PYTHON_PACKAGES is a space-separated list
"$VENV/bin/pip" install --no-cache-dir --no-compile \
    "pyspark==$PYSPARK_VERSION" \
    "py4j==$PY4J_VERSION" \
    "numpy==$NUMPY_VERSION" \
    "pandas==$PANDAS_VERSION" \
    "pyarrow==$PYARROW_VERSION" \
    "jupyterlab==$JUPYTERLAB_VERSION" \
    "rfc3987==$RFC3987_VERSION" \
    $EXTRA_PYTHON_PACKAGES > /tmp/sparkbox-pip.log 2>&1 &
pip_pid=$!

apt-get "$@" install -y --no-install-recommends "$JAVA_PACKAGE" tini procps
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
       /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
       /usr/share/man/* /usr/share/info/* /usr/share/lintian/* /usr/share/locale/*
find /usr/share/doc -mindepth 1 -type f ! -name copyright -delete 2>/dev/null || true
find /usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true

# JAVA_HOME independent of the Java package: /opt/sparkbox/java -> the JVM dir.
mkdir -p /opt/sparkbox
java_bin=$(readlink -f "$(command -v java)")
ln -sfn "${java_bin%/bin/java}" /opt/sparkbox/java
/opt/sparkbox/java/bin/java -version
took "apt: Java, Python"

if ! wait "$pip_pid"; then
    cat /tmp/sparkbox-pip.log
    echo "sparkbox: pip could not install the pinned packages (above)" >&2
    exit 1
fi
cat /tmp/sparkbox-pip.log
# Compile errors are ignored, as pip ignores them (some packages ship
# templates named .py); the compile is waited for before the cleanup.
"$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" > /dev/null 2>&1 &
compile_pid=$!
took "pip: the pinned packages"
# SPARK_HOME independent of the python minor: /opt/sparkbox/spark -> pyspark dir.
spark_dir=$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("pyspark").origin))')
ln -sfn "$spark_dir" /opt/sparkbox/spark
test -d /opt/sparkbox/spark/jars
chmod 0755 /opt/sparkbox/spark/bin/* 2>/dev/null || true

# ---- user ---------------------------------------------------------------
useradd --uid 1000 --user-group --create-home --home-dir /home/spark --shell /bin/bash spark
mkdir -p /home/spark/notebooks /home/spark/.sparkbox/spark-conf
chown -R spark:spark /home/spark

# ---- extra packages: their names, for measure-versions --------------------
names=""
for spec in $EXTRA_PYTHON_PACKAGES; do
    # requirement spec -> distribution name: "foo[bar]>=1; python_version..." -> "foo"
    names="$names $(printf '%s' "$spec" | sed -e 's/[][<>=!~;@ ].*$//')"
done
printf '%s\n' $names > /opt/sparkbox/extra-packages
chmod 0644 /opt/sparkbox/extra-packages

# ---- bin/ ------------------------------------------------------------------
mkdir -p /opt/sparkbox/bin
cp -R "$CTX/bin/." /opt/sparkbox/bin/
rm -rf /opt/sparkbox/bin/__pycache__
chmod 0755 /opt/sparkbox/bin/*
# JupyterLab: no news or update checks from the page (it would reach the
# internet), the getting-started notebook the entrypoint gives a new
# notebooks volume.
# The server's settings (a file of its own: the .d folder beside it is read
# only for which extensions are on): the kernel manager that keeps a kernel
# started ahead (python/sbx_kernels.py).
mkdir -p "$VENV/share/jupyter/lab/settings" "$VENV/etc/jupyter" /opt/sparkbox/notebooks
cp "$CTX/jupyter/overrides.json" "$VENV/share/jupyter/lab/settings/overrides.json"
cp "$CTX/jupyter/jupyter_server_config.json" "$VENV/etc/jupyter/jupyter_server_config.json"
cp "$CTX/jupyter/getting-started.ipynb" /opt/sparkbox/notebooks/
chmod -R a+rX /opt/sparkbox/notebooks "$VENV/share/jupyter/lab/settings" "$VENV/etc/jupyter"
mkdir -p /home/spark/.ipython/profile_default/startup
ln -sf /opt/sparkbox/bin/kernel-startup.py /home/spark/.ipython/profile_default/startup/00-sparkbox.py
chown -R spark:spark /home/spark/.ipython

# ---- measure: the versions, and the daemons' java command ------------------
# The final image's ENV (image.conf), so what is measured is what runs.
# shellcheck disable=SC2046  # the values hold no spaces
set -- $(sed -n 's/^ENV //p' "$CTX/image.conf")
env -i "$@" HOME=/root \
    /opt/sparkbox/bin/measure-versions --full --check "$EXPECTED_VERSIONS" > /opt/sparkbox/versions.json
chmod 0644 /opt/sparkbox/versions.json
echo "versions.json: $(cat /opt/sparkbox/versions.json)"
env -i "$@" HOME=/root SPARK_PRINT_LAUNCH_COMMAND=1 \
    spark-class org.apache.spark.deploy.master.Master --help 2>&1 \
  | sed -n 's/^Spark Command: \(.*\) org\.apache\.spark\.deploy\.master\.Master --help$/\1/p' \
  > /opt/sparkbox/daemon-java-cmd
test -s /opt/sparkbox/daemon-java-cmd
chmod 0644 /opt/sparkbox/daemon-java-cmd

took "the user, bin/ and the measured versions"
# ---- the notebook driver: launch line and class data sharing archive -------
# sbx_driver starts a notebook's driver JVM without spark-submit's launcher
# JVM, from the line the launcher makes (driver-launch.json), and maps the
# classes a first session and query load from driver.jsa instead of reading
# them from the jars: measured in bench/first-answer.
mkdir -p /opt/sparkbox/python
cp "$CTX/python/"*.py /opt/sparkbox/python/
chmod 0644 /opt/sparkbox/python/*.py
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo /opt/sparkbox/python > "$site/sparkbox.pth"
mkdir -p /tmp/sparkbox-dump
(
    cd /tmp/sparkbox-dump
    env -i "$@" HOME=/tmp/sparkbox-dump python -m sbx_driver --write-launch /opt/sparkbox/driver-launch.json
    env -i "$@" HOME=/tmp/sparkbox-dump python -m sbx_driver --dump /opt/sparkbox/driver.jsa \
        > /tmp/sparkbox-dump/log 2>&1 || { tail -40 /tmp/sparkbox-dump/log; exit 1; }
)
chmod 0644 /opt/sparkbox/driver-launch.json /opt/sparkbox/driver.jsa
ls -l /opt/sparkbox/driver.jsa

took "the driver launch line and class archive"
wait "$compile_pid" || true
took "the byte code"
# ---- cleanup: the context (CA, recipe), caches, build-time settings --------
rm -f /etc/dpkg/dpkg.cfg.d/02-sparkbox-build-unsafe-io
rm -rf /root/.cache /tmp/* /tmp/.[!.]* /var/tmp/*
