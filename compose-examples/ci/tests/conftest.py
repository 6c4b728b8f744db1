"""A `spark` fixture: a Spark Connect session to the cluster run-tests.sh
brought up (SPARK_REMOTE, e.g. sc://localhost:15002)."""
import os

import pytest
from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark():
    remote = os.environ.get("SPARK_REMOTE")
    if not remote:
        pytest.fail("SPARK_REMOTE is not set: run these tests through run-tests.sh")
    session = SparkSession.builder.remote(remote).getOrCreate()
    yield session
    session.stop()
