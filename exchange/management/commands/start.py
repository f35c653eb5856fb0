import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Start the web server and the django-q2 task cluster together; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host, port, **options):
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        web = subprocess.Popen([*manage, "runserver", "--noreload", f"{host}:{port}"])
        processes = {"web server": web}
        try:
            self._wait_for(host, port, web)
            processes["task cluster"] = subprocess.Popen([*manage, "qcluster"])
            self.stdout.write(self.style.SUCCESS(
                f"\n  CTE is running: http://{host}:{port}/admin/   (Ctrl-C stops the web server and the tasks)\n"
            ))
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
            ended = next(name for name, process in processes.items() if process.poll() is not None)
            raise CommandError(f"the {ended} stopped (exit code {processes[ended].returncode}); stopping the rest")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping...")
        finally:
            self._stop(processes.values())

    def _wait_for(self, host: str, port: int, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CommandError(f"the web server did not start (exit code {process.returncode})")
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise CommandError(f"the web server did not answer on {host}:{port} within 30 s")

    @staticmethod
    def _stop(processes) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
