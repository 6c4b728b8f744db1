"""Integration tests that need a real cluster: a fixture file read from
/data by the executors, a Python UDF evaluated on the workers, a shuffle."""
import socket

from pyspark.sql import functions as F


def test_fixture_is_read_on_the_cluster(spark):
    orders = spark.read.csv("/data/orders.csv", header=True, inferSchema=True)
    totals = {r["customer"]: r["total"] for r in
              orders.groupBy("customer").agg(F.sum("amount").alias("total")).collect()}
    assert totals == {"ada": 42.5, "alan": 10.0, "grace": 5.0}


def test_python_udf_runs_on_the_workers(spark):
    where = F.udf(lambda _: socket.gethostname(), "string")
    hosts = {r["h"] for r in spark.range(8).repartition(4).select(where("id").alias("h")).collect()}
    assert hosts and all("-worker-" in h for h in hosts), hosts


def test_shuffle_and_join(spark):
    left = spark.range(100).withColumn("k", F.col("id") % 10)
    right = spark.range(10).withColumnRenamed("id", "k").withColumn("name", F.concat(F.lit("k"), "k"))
    joined = left.join(right, "k").groupBy("name").count().orderBy("name").collect()
    assert len(joined) == 10 and all(r["count"] == 10 for r in joined)
