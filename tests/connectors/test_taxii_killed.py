"""A TAXII pull killed with SIGKILL between pages resumes where its last committed page ended."""


from django.test import TransactionTestCase

from exchange.models import Indicator, PluginConfig, Run, Sighting
from exchange.pull import run_pull
from exchange.runs import INTERRUPTED
from tests.support.factories import make_config
from tests.support.medallion import READ_ID, Medallion
from tests.support.processes import kill_pull_when
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
        def two_pages_merged():
            run = Run.objects.filter(config=config).first()
            return bool(run and run.batches >= 2)

        kill_pull_when(config.name, two_pages_merged)
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
