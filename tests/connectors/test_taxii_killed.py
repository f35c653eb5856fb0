"""A TAXII pull killed with SIGKILL between pages resumes where its last committed page ended."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.test import TransactionTestCase

from exchange.models import Indicator, PluginConfig, Run, Sighting
from exchange.pull import run_pull
from exchange.runs import INTERRUPTED
from tests.exchange.test_pull import subprocess_env
from tests.support.factories import make_config
from tests.support.medallion import READ_ID, Medallion
from tests.support.stixdata import corpus


def snapshot() -> list[tuple]:
    return sorted(Sighting.objects.values_list("indicator__type", "indicator__value", "indicator__reputation",
                                               "indicator__tags", "indicator__comments", "external_id", "hits"))


class KilledPullTests(TransactionTestCase):
    def setUp(self):
        self.corpus = corpus(300)
        self.taxii = self.enterContext(Medallion(self.corpus.objects, max_page_size=50))

    def config(self, name: str) -> PluginConfig:
        return make_config(name, connector="taxii", settings={
            "url": self.taxii.discovery_url, "version": "2.1", "auth": "basic", "username": "reader",
            "collections": "Indicators", "page_size": 50, "lookback": 0}, secrets={"password": "reader-pass"})

    def kill_after_two_pages(self, config: PluginConfig) -> None:
        self.taxii.delay = 0.3  # every answer: time to kill the pull between pages
        process = subprocess.Popen([sys.executable, str(settings.BASE_DIR / "manage.py"), "pull", config.name],
                                   env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                run = Run.objects.filter(config=config).first()
                if run and run.batches >= 2:
                    break
                if process.poll() is not None:
                    self.fail(f"the pull ended before it could be killed: {process.stderr.read().decode()}")
                time.sleep(0.05)
            else:
                self.fail("the pull never committed two pages")
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()
        self.taxii.delay = 0

    def test_a_pull_killed_between_pages_resumes_without_loss_or_double_counting(self):
        config = self.config("partner feed")
        self.kill_after_two_pages(config)

        config.refresh_from_db()
        killed = Run.objects.get(config=config)
        self.assertEqual(killed.status, Run.Status.RUNNING)  # nobody could close it
        self.assertIsNone(config.last_run)
        pages = killed.batches
        self.assertLess(pages, 6)
        manifest = self.taxii.collection(READ_ID)["manifest"]
        self.assertEqual(config.cursor["positions"][READ_ID]["after"], manifest[pages * 50 - 1]["date_added"])
        self.assertEqual(Run.objects.get(pk=killed.pk).received, sum(self.corpus.records[:pages * 50]))

        resumed = run_pull(config.pk)

        killed.refresh_from_db()
        self.assertEqual((killed.status, killed.error), (Run.Status.FAILED, INTERRUPTED))
        self.assertEqual(resumed.status, Run.Status.SUCCESS, resumed.error)
        self.assertEqual(killed.received + resumed.received, sum(self.corpus.records))
        self.assertEqual(resumed.unchanged, 0)
        self.assertEqual(set(Indicator.objects.values_list("type", "value")), self.corpus.kept)
        resumed_store = snapshot()

        Indicator.objects.all().delete()
        clean = run_pull(self.config("clean pull").pk)
        self.assertEqual(clean.received, sum(self.corpus.records))
        self.assertEqual(resumed_store, snapshot())
