"""The share run and its ledger: what is sent, what is refused and retried, caps, full replace,
retraction, loop prevention, validation of sharing configurations, and their schedules."""

import threading
from datetime import timedelta
from unittest import mock

from django.core.exceptions import ValidationError
from django.db import connections
from django.test import TestCase, override_settings
from django.utils import timezone
from django_q.models import Schedule

from connectors.base import Record
from exchange import ledger
from exchange.ingest import ingest_batch
from exchange.locks import exclusive
from exchange.models import Delivery, Indicator, Run, Settings, SharingConfig
from exchange.pull import Skipped, run_pull
from exchange.schedules import SHARE_TASK, share_schedule_name, sync_all
from exchange.sharing import run_share
from exchange.sharing_checks import warnings_for
from rules.models import BusinessRule
from tests.support.connectors import RECEIVED
from tests.support.factories import make_config

URLS = [f"http://bad{i}.example/x" for i in range(5)]


def feed(source, *values, type_=None, **fields):
    ingest_batch(source, [Record(value, type_, **fields) for value in values], timezone.now())


def make_share(name="share", *, rule, destination, action="add", params=None, **fields) -> SharingConfig:
    config = SharingConfig(name=name, rule=rule, destination=destination, action=action,
                           params={"list": "blocklist"} if params is None else params, **fields)
    config.full_clean()
    config.save()
    return config


class ShareTestCase(TestCase):
    def setUp(self):
        RECEIVED.clear()
        self.source = make_config("feed")
        self.destination = make_config("dest", connector="recorder")
        self.rule = BusinessRule.objects.create(name="urls", expression="type = url")

    def share(self, config: SharingConfig, trigger: str = "manual") -> Run:
        return run_share(config.pk, trigger=trigger)

    def calls(self, call: str = "push") -> list[list[str]]:
        return [values for kind, _, values in RECEIVED.get(self.destination.pk, []) if kind == call]

    def sent(self, call: str = "push") -> list[str]:
        return [value for values in self.calls(call) for value in values]

    def ledger(self, config: SharingConfig) -> dict[str, str]:
        return dict(Delivery.objects.filter(config=config).values_list("value", "status"))

    def set_destination(self, **settings):
        self.destination.settings = {**self.destination.settings, **settings}
        self.destination.save()


class SelectionTests(ShareTestCase):
    def test_only_what_the_rule_selects_is_sent(self):
        feed(self.source, *URLS[:2], "evil.example", "d41d8cd98f00b204e9800998ecf8427e")
        run = self.share(make_share(rule=self.rule, destination=self.destination))
        self.assertEqual(sorted(self.sent()), URLS[:2])
        self.assertEqual((run.status, run.shared, run.failed), (Run.Status.SUCCESS, 2, 0))

    def test_a_rule_that_selects_nothing_sends_nothing(self):
        feed(self.source, "evil.example")
        run = self.share(make_share(rule=self.rule, destination=self.destination))
        self.assertEqual((self.sent(), run.shared), ([], 0))
        # Nothing is pushed; finish still runs, so a destination can deploy what a failed run left pending.
        self.assertEqual(RECEIVED.get(self.destination.pk), [("finish", "add", [])])

    def test_a_configuration_with_a_source_shares_only_that_source_s_indicators(self):
        other = make_config("other")
        feed(self.source, URLS[0])
        feed(other, URLS[1])
        self.share(make_share(rule=self.rule, destination=self.destination, source=other))
        self.assertEqual(self.sent(), [URLS[1]])

    def test_an_excluded_value_is_never_sent_even_when_several_sources_report_it(self):
        self.rule.exclusions = f"{URLS[0]}\n*.internal.example/*"
        self.rule.save()
        feed(self.source, URLS[0], URLS[1], "http://wiki.internal.example/a")
        feed(make_config("second"), URLS[0])
        self.share(make_share(rule=self.rule, destination=self.destination))
        self.assertEqual(self.sent(), [URLS[1]])

    def test_what_the_destination_itself_reported_is_not_sent_back(self):
        feed(self.source, URLS[0], URLS[1])
        feed(self.destination, URLS[1])  # e.g. an EDR that both reports and receives
        run = self.share(make_share(rule=self.rule, destination=self.destination))
        self.assertEqual(self.sent(), [URLS[0]])
        self.assertEqual(run.received, 1)

    def test_a_new_configuration_shares_the_existing_matching_indicators(self):
        feed(self.source, *URLS[:3])
        self.share(make_share(rule=self.rule, destination=self.destination))
        self.assertEqual(sorted(self.sent()), URLS[:3])

    def test_without_share_existing_only_later_indicators_are_sent(self):
        feed(self.source, URLS[0])
        Indicator.objects.update(updated=timezone.now() - timedelta(hours=1))
        config = make_share(rule=self.rule, destination=self.destination, share_existing=False)
        feed(self.source, URLS[1])
        self.share(config)
        self.assertEqual(self.sent(), [URLS[1]])

    def test_expired_indicators_are_not_sent(self):
        feed(self.source, URLS[0], URLS[1])
        Indicator.objects.filter(value=URLS[0]).update(active=False)
        self.share(make_share(rule=self.rule, destination=self.destination))
        self.assertEqual(self.sent(), [URLS[1]])


class LedgerTests(ShareTestCase):
    def test_shared_values_are_not_sent_again(self):
        feed(self.source, *URLS[:2])
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        second = self.share(config)
        self.assertEqual(len(self.calls()), 1)
        self.assertEqual((second.shared, second.received), (0, 0))
        self.assertEqual(self.ledger(config), dict.fromkeys(URLS[:2], Delivery.Status.SHARED))

    def test_an_indicator_that_changed_since_it_was_shared_is_sent_again(self):
        feed(self.source, *URLS[:2])
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        feed(self.source, URLS[1], severity="critical")
        self.share(config)
        self.assertEqual((len(self.calls()), self.calls()[-1]), (2, [URLS[1]]))
        delivery = Delivery.objects.get(config=config, value=URLS[1])
        self.assertEqual(delivery.version, Indicator.objects.get(value=URLS[1]).updated)

    def test_a_refused_value_fails_with_the_reason_and_waits_for_its_retry(self):
        feed(self.source, *URLS[:2])
        self.set_destination(refuse={URLS[0]: "not a valid entry"})
        config = make_share(rule=self.rule, destination=self.destination)
        run = self.share(config)
        self.assertEqual((run.shared, run.failed), (1, 1))
        failed = Delivery.objects.get(config=config, value=URLS[0])
        self.assertEqual((failed.status, failed.attempts, failed.last_error),
                         (Delivery.Status.FAILED, 1, "not a valid entry"))
        self.assertGreater(failed.next_attempt, timezone.now())

        self.share(config)  # too early: the failed value waits
        self.assertEqual(len(self.calls()), 1)

        Delivery.objects.filter(pk=failed.pk).update(next_attempt=timezone.now() - timedelta(seconds=1))
        self.set_destination(refuse={})
        self.share(config)
        self.assertEqual(self.calls()[-1], [URLS[0]])
        failed.refresh_from_db()
        self.assertEqual((failed.status, failed.attempts, failed.last_error), (Delivery.Status.SHARED, 0, ""))

    @override_settings(CTE_SHARE_MAX_ATTEMPTS=2, CTE_SHARE_RETRY_MINUTES=0)
    def test_retries_stop_after_the_configured_number_of_attempts(self):
        feed(self.source, URLS[0])
        self.set_destination(refuse={URLS[0]: "refused"})
        config = make_share(rule=self.rule, destination=self.destination)
        for _ in range(4):
            self.share(config)
        self.assertEqual(len(self.calls()), 2)
        self.assertEqual(Delivery.objects.get(config=config).attempts, 2)

    def test_the_wait_between_attempts_doubles_up_to_a_day(self):
        with self.settings(CTE_SHARE_RETRY_MINUTES=5):
            self.assertEqual([ledger.backoff(n) for n in (1, 2, 3)],
                             [timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20)])
            self.assertEqual(ledger.backoff(30), timedelta(days=1))

    def test_an_unreachable_destination_fails_the_run_and_its_batch_is_sent_again_later(self):
        feed(self.source, *URLS[:2])
        self.set_destination(down="connection refused")
        config = make_share(rule=self.rule, destination=self.destination)
        run = self.share(config)
        self.assertEqual((run.status, run.error), (Run.Status.FAILED, "connection refused"))
        config.refresh_from_db()
        self.assertEqual((config.last_status, config.enabled), (SharingConfig.Status.ERROR, True))
        self.assertEqual(set(self.ledger(config).values()), {Delivery.Status.FAILED})

        Delivery.objects.update(next_attempt=timezone.now())
        self.set_destination(down="")
        self.assertEqual(self.share(config).shared, 2)
        config.refresh_from_db()
        self.assertEqual((config.last_status, config.last_error), (SharingConfig.Status.OK, ""))

    def test_a_permanent_error_disables_the_configuration(self):
        feed(self.source, URLS[0])
        self.set_destination(down="401: the token is wrong", permanent=True)
        config = make_share(rule=self.rule, destination=self.destination)
        run = self.share(config)
        config.refresh_from_db()
        self.assertFalse(config.enabled)
        self.assertIn("the token is wrong", config.last_error)
        self.assertIn("disabled", run.error)

    def test_one_refusal_in_a_later_batch_leaves_the_others_shared(self):
        feed(self.source, *URLS)
        self.set_destination(batch_items=2, refuse={URLS[3]: "too long"})
        config = make_share(rule=self.rule, destination=self.destination)
        run = self.share(config)
        self.assertEqual([len(values) for values in self.calls()], [2, 2, 1])
        self.assertEqual((run.shared, run.failed), (4, 1))
        self.assertEqual(self.ledger(config)[URLS[3]], Delivery.Status.FAILED)

    def test_the_destination_is_deployed_once_after_its_pushes(self):
        feed(self.source, *URLS)
        self.set_destination(batch_items=2)
        self.share(make_share(rule=self.rule, destination=self.destination))
        kinds = [kind for kind, _, _ in RECEIVED[self.destination.pk]]
        self.assertEqual(kinds, ["push", "push", "push", "finish"])


class CapacityTests(ShareTestCase):
    def test_what_does_not_fit_stays_pending_best_first(self):
        now = timezone.now()
        for reputation, value in zip((2, 9, 5, 7, 9), URLS, strict=True):
            source = make_config(f"rep{reputation}-{value}", reputation=reputation)
            ingest_batch(source, [Record(value, "url", last_seen=now)], now)
        Indicator.objects.filter(value=URLS[4]).update(last_seen=now - timedelta(days=2))
        self.set_destination(max_items=3)
        config = make_share(rule=self.rule, destination=self.destination)
        run = self.share(config)
        # Reputation 9, 9 (the more recent first), then 7.
        self.assertEqual(self.sent(), [URLS[1], URLS[4], URLS[3]])
        self.assertEqual((run.shared, run.pending), (3, 2))
        pending = Delivery.objects.filter(config=config, status=Delivery.Status.PENDING)
        self.assertEqual(sorted(pending.values_list("value", flat=True)), [URLS[0], URLS[2]])
        self.assertIn("capacity (3 items", pending.first().last_error)

        # Room frees when an indicator expires: the best pending one goes next.
        Indicator.objects.filter(value=URLS[1]).update(active=False)
        self.share(config)
        self.assertEqual(self.calls("retract"), [[URLS[1]]])
        self.assertEqual(self.calls()[-1], [URLS[2]])

    def test_a_changed_indicator_already_at_the_target_takes_no_room(self):
        feed(self.source, *URLS[:2])
        self.set_destination(max_items=2)
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        feed(self.source, URLS[0], severity="high")
        run = self.share(config)
        self.assertEqual((self.calls()[-1], run.pending), ([URLS[0]], 0))

    def test_a_request_stays_within_the_action_s_bytes(self):
        feed(self.source, *URLS)
        self.set_destination(batch_bytes=len(URLS[0]) * 2 + 2)  # two values and their line breaks
        self.share(make_share(rule=self.rule, destination=self.destination))
        self.assertEqual([len(values) for values in self.calls()], [2, 2, 1])


class ReplaceTests(ShareTestCase):
    def make(self):
        return make_share(rule=self.rule, destination=self.destination, action="replace")

    def test_the_whole_set_is_sent_and_an_unchanged_set_is_not_sent_again(self):
        feed(self.source, *URLS[:2])
        config = self.make()
        self.share(config)
        second = self.share(config)
        self.assertEqual(len(self.calls()), 1)
        self.assertIn("unchanged", second.error)
        self.assertEqual(second.status, Run.Status.SUCCESS)
        feed(self.source, URLS[2])
        self.share(config)
        self.assertEqual(sorted(self.calls()[-1]), URLS[:3])

    def test_what_left_the_set_is_retracted_in_the_ledger(self):
        feed(self.source, *URLS[:3])
        config = self.make()
        self.share(config)
        Indicator.objects.filter(value=URLS[0]).update(active=False)
        run = self.share(config)
        self.assertEqual(sorted(self.calls()[-1]), URLS[1:3])
        self.assertEqual(run.retracted, 1)
        self.assertEqual(self.ledger(config)[URLS[0]], Delivery.Status.RETRACTED)

    def test_an_empty_set_empties_the_target(self):
        feed(self.source, URLS[0])
        config = self.make()
        self.share(config)
        Indicator.objects.update(active=False)
        self.share(config)
        self.assertEqual(self.calls(), [[URLS[0]], []])

    def test_a_cleared_ledger_makes_the_next_run_push_again(self):
        feed(self.source, URLS[0])
        config = self.make()
        self.share(config)
        Delivery.objects.all().delete()
        self.share(config)
        self.assertEqual(len(self.calls()), 2)
        self.assertEqual(self.ledger(config), {URLS[0]: Delivery.Status.SHARED})


class RetractionTests(ShareTestCase):
    def test_an_expired_indicator_is_retracted(self):
        feed(self.source, *URLS[:2])
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        Indicator.objects.filter(value=URLS[0]).update(active=False)
        run = self.share(config)
        self.assertEqual((self.calls("retract"), run.retracted), ([[URLS[0]]], 1))
        delivery = Delivery.objects.get(config=config, value=URLS[0])
        self.assertEqual(delivery.status, Delivery.Status.RETRACTED)
        self.assertIsNotNone(delivery.retracted_at)

    def test_an_indicator_the_rule_no_longer_selects_is_retracted(self):
        feed(self.source, URLS[0], "http://keep.example/")
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        self.rule.expression = "type = url and value contains keep"
        self.rule.save()
        self.share(config)
        self.assertEqual(self.calls("retract"), [[URLS[0]]])

    def test_a_deleted_indicator_is_retracted_by_its_stored_value(self):
        feed(self.source, URLS[0])
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        Indicator.objects.all().delete()
        self.share(config)
        self.assertEqual(self.calls("retract"), [[URLS[0]]])

    def test_a_refused_retraction_stays_shared_with_the_reason(self):
        feed(self.source, URLS[0])
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        Indicator.objects.update(active=False)
        self.set_destination(refuse_retract={URLS[0]: "locked by policy"})
        run = self.share(config)
        delivery = Delivery.objects.get(config=config)
        self.assertEqual((delivery.status, delivery.last_error),
                         (Delivery.Status.SHARED, "retraction refused: locked by policy"))
        self.assertIn("1 retraction(s) refused", run.error)

    def test_a_reshared_indicator_comes_back_after_its_retraction(self):
        feed(self.source, URLS[0])
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        Indicator.objects.update(active=False)
        self.share(config)
        feed(self.source, URLS[0])  # seen again: active again
        self.share(config)
        self.assertEqual(self.calls(), [[URLS[0]], [URLS[0]]])
        self.assertEqual(self.ledger(config), {URLS[0]: Delivery.Status.SHARED})

    def test_pending_deliveries_whose_indicator_left_the_set_are_forgotten(self):
        feed(self.source, *URLS[:2])
        self.set_destination(max_items=1)
        config = make_share(rule=self.rule, destination=self.destination)
        self.share(config)
        pending = Delivery.objects.get(config=config, status=Delivery.Status.PENDING)
        Indicator.objects.filter(pk=pending.indicator_id).update(active=False)
        self.share(config)
        self.assertFalse(Delivery.objects.filter(pk=pending.pk).exists())


class RunGateTests(ShareTestCase):
    def setUp(self):
        super().setUp()
        feed(self.source, URLS[0])
        self.config = make_share(rule=self.rule, destination=self.destination)

    def test_nothing_runs_while_the_module_is_off(self):
        general = Settings.load()
        general.module_enabled = False
        general.save()
        with self.assertRaisesMessage(Skipped, "module is off"):
            self.share(self.config)

    def test_a_disabled_configuration_runs_only_when_asked(self):
        SharingConfig.objects.filter(pk=self.config.pk).update(enabled=False)
        with self.assertRaisesMessage(Skipped, "disabled"):
            self.share(self.config, trigger="schedule")
        self.assertEqual(self.share(self.config).shared, 1)

    def test_a_disabled_destination_receives_nothing(self):
        self.destination.enabled = False
        self.destination.save()
        with self.assertRaisesMessage(Skipped, "destination"):
            self.share(self.config)

    def test_a_run_that_finds_the_previous_one_still_going_exits(self):
        holding, release = threading.Event(), threading.Event()

        def hold_lock():
            try:
                with exclusive(f"share:{self.config.pk}") as acquired:
                    assert acquired
                    holding.set()
                    release.wait(10)
            finally:
                connections.close_all()

        holder = threading.Thread(target=hold_lock)
        holder.start()
        try:
            self.assertTrue(holding.wait(10))
            with self.assertRaisesMessage(Skipped, "previous share is still running"):
                self.share(self.config)
        finally:
            release.set()
            holder.join()
        self.assertEqual(self.share(self.config).shared, 1)


class ValidationTests(ShareTestCase):
    def refusal(self, **fields) -> dict[str, list[str]]:
        fields = {"rule": self.rule, "destination": self.destination, **fields}
        with self.assertRaises(ValidationError) as raised:
            make_share("new", **fields)
        return raised.exception.message_dict

    def test_source_and_destination_must_differ(self):
        errors = self.refusal(source=self.destination)
        self.assertIn("a share goes one way", errors["destination"][0])

    def test_the_destination_must_be_able_to_receive(self):
        errors = self.refusal(destination=self.source)
        self.assertIn("cannot receive indicators", errors["destination"][0])

    def test_the_action_must_be_one_of_the_destination_s(self):
        errors = self.refusal(action="explode")
        self.assertIn("has no action 'explode' (one of: add, add_once, replace)", errors["action"][0])

    def test_the_action_parameters_are_checked_by_the_action_s_form(self):
        errors = self.refusal(params={})
        self.assertEqual(errors["action"], ["Add to a list: list: This field is required."])

    def test_two_full_replace_configurations_may_not_write_one_target(self):
        make_share("first", rule=self.rule, destination=self.destination, action="replace")
        errors = self.refusal(action="replace")
        self.assertIn("'first' already writes Replace a list (list 'blocklist') on dest in full-replace mode",
                      errors["action"][0])
        make_share("elsewhere", rule=self.rule, destination=self.destination, action="replace",
                   params={"list": "other"})

    def test_a_one_writer_target_takes_one_configuration(self):
        make_share("first", rule=self.rule, destination=self.destination, action="add_once")
        self.assertIn("takes one writer only", self.refusal(action="add_once")["action"][0])

    def test_two_appending_configurations_on_one_target_get_a_warning(self):
        make_share("first", rule=self.rule, destination=self.destination)
        second = make_share("second", rule=self.rule, destination=self.destination)
        self.assertEqual(len(warnings_for(second)), 1)
        self.assertIn("'first' also appends to Add to a list (list 'blocklist')", warnings_for(second)[0])


class ScheduleTests(ShareTestCase):
    def schedule(self, config):
        return Schedule.objects.filter(name=share_schedule_name(config.pk)).first()

    def test_an_enabled_configuration_gets_a_schedule_that_follows_it(self):
        with self.captureOnCommitCallbacks(execute=True):
            config = make_share(rule=self.rule, destination=self.destination, sync_interval=15)
        schedule = self.schedule(config)
        self.assertEqual((schedule.func, schedule.args, schedule.minutes), (SHARE_TASK, repr(config.pk), 15))
        config.enabled = False
        with self.captureOnCommitCallbacks(execute=True):
            config.save()
        self.assertIsNone(self.schedule(config))
        config.enabled = True
        with self.captureOnCommitCallbacks(execute=True):
            config.save()
        self.assertIsNotNone(self.schedule(config))
        with self.captureOnCommitCallbacks(execute=True):
            config.delete()
        self.assertFalse(Schedule.objects.filter(func=SHARE_TASK).exists())

    def test_setup_schedules_writes_the_shares_and_drops_orphans(self):
        config = make_share(rule=self.rule, destination=self.destination)
        Schedule.objects.all().delete()
        Schedule.objects.create(name=share_schedule_name(9999), func=SHARE_TASK)
        counts = sync_all()
        self.assertEqual(counts["share"], 1)
        self.assertIsNotNone(self.schedule(config))
        self.assertFalse(Schedule.objects.filter(name=share_schedule_name(9999)).exists())

    def test_a_successful_pull_queues_the_shares_its_source_feeds(self):
        scripted = make_config("scripted", connector="scripted", settings={"batches": [[URLS[0]]], "type": "url"})
        fed = make_share("fed", rule=self.rule, destination=self.destination, source=scripted)
        anywhere = make_share("any source", rule=self.rule, destination=self.destination,
                              params={"list": "b"})
        make_share("other source", rule=self.rule, destination=self.destination, source=self.source,
                   params={"list": "c"})
        with mock.patch("django_q.tasks.async_task") as queue, self.captureOnCommitCallbacks(execute=True):
            run_pull(scripted.pk, trigger="manual")
        self.assertEqual(sorted(call.args[1] for call in queue.call_args_list), sorted([fed.pk, anywhere.pk]))

    def test_a_failed_pull_queues_nothing(self):
        scripted = make_config("scripted", connector="scripted", settings={"batches": [[URLS[0]]], "fail_at": 0})
        make_share("fed", rule=self.rule, destination=self.destination, source=scripted)
        with mock.patch("django_q.tasks.async_task") as queue, self.captureOnCommitCallbacks(execute=True):
            run_pull(scripted.pk, trigger="manual")
        queue.assert_not_called()
