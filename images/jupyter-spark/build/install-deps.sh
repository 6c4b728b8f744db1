#!/bin/sh
# Runs once in the `deps` build stage (as root). Installs Java, Python, a venv
# with the pinned packages, creates the `spark` user, and cleans up. The
# optional CA bundle /tmp/sparkbox-ca.crt is trusted by apt and pip during this
# script only and deleted at the end.
set -eu

: "${PYSPARK_VERSION:?build arg PYSPARK_VERSION is required}"
: "${PY4J_VERSION:?build arg PY4J_VERSION is required}"
: "${NUMPY_VERSION:?build arg NUMPY_VERSION is required}"
: "${PANDAS_VERSION:?build arg PANDAS_VERSION is required}"
: "${PYARROW_VERSION:?build arg PYARROW_VERSION is required}"
: "${JUPYTERLAB_VERSION:?build arg JUPYTERLAB_VERSION is required}"
JAVA_PACKAGE="${JAVA_PACKAGE:-openjdk-17-jre-headless}"
EXTRA_PYTHON_PACKAGES="${EXTRA_PYTHON_PACKAGES:-}"

CA=/tmp/sparkbox-ca.crt
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
apt-get "$@" install -y --no-install-recommends \
    "$JAVA_PACKAGE" python3 python3-venv tini procps ca-certificates
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

# ---- python venv + pinned packages --------------------------------------
python3 -m venv "$VENV"

# pip: an empty PIP_INDEX_URL means "pip's own default".
if [ -z "${PIP_INDEX_URL:-}" ]; then unset PIP_INDEX_URL; fi
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
# shellcheck disable=SC2086  # EXTRA_PYTHON_PACKAGES is a space-separated list
"$VENV/bin/pip" install --no-cache-dir \
    "pyspark==$PYSPARK_VERSION" \
    "py4j==$PY4J_VERSION" \
    "numpy==$NUMPY_VERSION" \
    "pandas==$PANDAS_VERSION" \
    "pyarrow==$PYARROW_VERSION" \
    "jupyterlab==$JUPYTERLAB_VERSION" \
    "rfc3987==$RFC3987_VERSION" \
    $EXTRA_PYTHON_PACKAGES

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

# ---- cleanup: CA, caches --------------------------------------------------
rm -rf /root/.cache /tmp/* /tmp/.[!.]* /var/tmp/*
