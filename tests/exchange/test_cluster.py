"""A real django-q2 cluster runs the scheduled pull, with the ORM broker and with Redis.

The cluster's guard calls django-q2's ``scheduler()`` every 30 s; the test calls it once itself,
in a second process with the cluster's settings, so that it does not wait for the tick.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import redis
from django.conf import settings
from django.test import TransactionTestCase

from exchange.models import Run
from tests.support.factories import make_config
from tests.support.processes import subprocess_env

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class ClusterTests(TransactionTestCase):
    def run_cluster_until_pulled(self, **env):
        config = make_config("clustered", connector="scripted",
                             settings={"batches": [["198.51.100.1", "198.51.100.2"]], "type": "ipv4"})
        # Saving the configuration scheduled its pull (on commit); a cluster now runs it.
        environment = {**subprocess_env(), "CTE_QUEUE": f"cte-test-{uuid.uuid4().hex[:8]}", "Q_WORKERS": "1", **env}
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        cluster = subprocess.Popen([*manage, "qcluster"], env=environment, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            tick = "from django_q.brokers import get_broker; from django_q.scheduler import scheduler; " \
                   "scheduler(broker=get_broker())"
            subprocess.run([*manage, "shell", "-c", tick], env=environment, check=True, capture_output=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                run = Run.objects.filter(config=config, status=Run.Status.SUCCESS).first()
                if run:
                    return run
                if cluster.poll() is not None:
                    self.fail(f"the cluster stopped: {cluster.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
            self.fail("the scheduled pull did not run within 60 s")
        finally:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait(10)
            cluster.stderr.close()

    def test_the_orm_broker_runs_the_scheduled_pull(self):
        run = self.run_cluster_until_pulled(REDIS_URL="")
        self.assertEqual((run.trigger, run.created), ("schedule", 2))

    def test_the_redis_broker_runs_the_scheduled_pull(self):
        try:
            redis.Redis.from_url(REDIS_URL).ping()
        except redis.RedisError as exc:
            self.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); CI starts it")
        run = self.run_cluster_until_pulled(REDIS_URL=REDIS_URL)
        self.assertEqual((run.trigger, run.created), ("schedule", 2))
