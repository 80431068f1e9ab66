"""The whole system on one machine, supervised from one foreground process (`manage.py runlocal`).

Every part is a child process that reads its settings from the environment prepared here:
moto server (AWS), the DynamoDB-stream -> Kinesis bridge, the CDC poller, the flight-event
notifier and the web server. A crashed worker is reported and restarted with backoff; if moto
itself dies its in-memory state is gone, so everything stops. Ctrl-C (or SIGTERM) stops all
children, newest first.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STAFF_USERNAME = "staff"
STAFF_PASSWORD = "staff-local-only"  # noqa: S105 - a local demo login, printed on start


def local_environment(base: dict | None = None) -> dict:
    """The environment every child runs with: loopback moto, dummy credentials, local poller."""
    env = dict(os.environ if base is None else base)
    port = env.setdefault("PORT", "8000")
    moto_port = env.setdefault("MOTO_PORT", "5000")
    env.setdefault("AWS_ENDPOINT_URL", f"http://127.0.0.1:{moto_port}")
    env.setdefault("AWS_ACCESS_KEY_ID", "local")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    env.setdefault("AWS_REGION", "us-east-1")
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env.setdefault("CDC_LOCAL_POLLER", "true")
    env.setdefault("AIRTICKET_ALLOW_TRUNCATE", "true")
    env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.setdefault("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["AIRTICKET_LOCAL_URL"] = f"http://127.0.0.1:{port}"
    return env


def printable_python() -> str:
    """This interpreter as a user can type it in the checkout (`.venv/bin/python`): a bare
    `python` may not be the virtualenv's, and then the banner's commands fail as printed."""
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(BASE_DIR))
    except ValueError:
        return str(executable)


def manage(*args: str) -> list[str]:
    return [sys.executable, str(BASE_DIR / "manage.py"), *args]


def web_server(port: str) -> list[str]:
    """gunicorn, two processes (one per core here) with threads: the dev server is one process
    behind one GIL, and the command API spends its time waiting on moto."""
    workers = os.environ.get("WEB_CONCURRENCY", "2")
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "airticket.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        workers,
        "--threads",
        "8",
        "--graceful-timeout",
        "5",
        "--no-control-socket",
    ]


@dataclass
class Child:
    name: str
    argv: list[str]
    restartable: bool = True
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0


class Supervisor:
    def __init__(self, env: dict, out=sys.stdout):
        self.env = env
        self.out = out
        self.children: list[Child] = []
        self.stopping = False

    def say(self, message: str) -> None:
        self.out.write(f"[runlocal] {message}\n")
        self.out.flush()

    def run_step(self, *args: str) -> None:
        self.say("$ manage.py " + " ".join(args))
        subprocess.run(manage(*args), env=self.env, check=True, cwd=BASE_DIR)

    def start(self, child: Child) -> None:
        child.process = subprocess.Popen(child.argv, env=self.env, cwd=BASE_DIR, start_new_session=True)
        if child not in self.children:
            self.children.append(child)
        self.say(f"started {child.name} (pid {child.process.pid})")

    def wait_http(self, url: str, *, timeout: float, ok=(200,)) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                    if response.status in ok:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code in ok:
                    return True
            except OSError:
                pass
            self.check_children()
            time.sleep(0.3)
        return False

    def check_children(self) -> None:
        """Report crashed children; restart workers with backoff, stop all if moto died."""
        for child in self.children:
            if child.process is None or child.process.poll() is None:
                continue
            code = child.process.returncode
            if self.stopping:
                continue
            if not child.restartable:
                raise SystemExit(f"[runlocal] {child.name} exited with code {code}; its state is lost, stopping everything")
            if child.next_start == 0:
                delay = min(30, 2**child.restarts)
                child.next_start = time.monotonic() + delay
                self.say(f"{child.name} exited with code {code}; restarting in {delay}s")
            elif time.monotonic() >= child.next_start:
                child.restarts += 1
                child.next_start = 0
                self.start(child)

    def stop(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.process and child.process.poll() is None:
                self.say(f"stopping {child.name}")
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop; killing it")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()

    def banner(self, token: str) -> None:
        base = self.env["AIRTICKET_LOCAL_URL"]
        python = printable_python()
        lines = [
            "",
            "The air-ticket system is running.",
            f"  Admin portal   {base}/admin/   (login {STAFF_USERNAME} / {STAFF_PASSWORD})",
            f"  Operations     {base}/admin/admin_portal/shardcheckpoint/   (CDC checkpoints and lag, DLQ)",
            f"  Command API    {base}/api/v1/            e.g. POST {base}/api/v1/customers",
            f"  Query API      {base}/api/v1/query/      e.g. GET {base}/api/v1/query/passengers?flight_number=MU5159&flight_date=...",
            f"  API docs       {base}/api/v1/docs  (OpenAPI: {base}/api/v1/schema)",
            f"  Health         {base}/healthz",
            f"  AWS (moto)     {self.env['AWS_ENDPOINT_URL']}",
            f"  Staff token    {token}",
            f"  Demo           {python} manage.py ingest --api {base} demo --keep   (the lab's demo, then a day to look at)",
            f"  Weather        {python} manage.py demo_weather   (alerts from now over the demo's cities)",
            "Ctrl-C stops everything.",
            "",
        ]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()


def run(out=sys.stdout) -> int:
    env = local_environment()
    supervisor = Supervisor(env, out)
    stop_requested = []

    def on_signal(signum, frame):
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        moto_port = env["MOTO_PORT"]
        supervisor.start(Child("moto", [sys.executable, "-m", "airticket.moto_local", "127.0.0.1", moto_port], restartable=False))
        if not supervisor.wait_http(f"http://127.0.0.1:{moto_port}/moto-api/", timeout=60):
            raise SystemExit("[runlocal] moto server did not answer")
        for step in (
            ["provision_aws"],
            ["ensure_database"],
            ["migrate", "--noinput", "-v", "0"],
            ["load_airports"],
            ["load_demo_schedule"],
            ["ensure_staff_user", "--username", STAFF_USERNAME, "--password", STAFF_PASSWORD],
        ):
            supervisor.run_step(*step)
        for name, args in (
            ("bridge", ["run_bridge"]),
            ("poller", ["run_poller"]),
            ("notifier", ["notify_flight_events", "--loop"]),
        ):
            supervisor.start(Child(name, manage(*args)))
        supervisor.start(Child("web", web_server(env["PORT"])))
        token = subprocess.run(manage("issue_token", "--staff"), env=env, check=True, capture_output=True, text=True).stdout.strip()
        if supervisor.wait_http(f"{env['AIRTICKET_LOCAL_URL']}/healthz", timeout=90):
            supervisor.banner(token)
        else:
            supervisor.say("healthz did not turn 200 within 90 s; see the logs above")
        while not stop_requested:
            supervisor.check_children()
            time.sleep(0.5)
        return 0
    except subprocess.CalledProcessError as exc:
        supervisor.say(f"setup step failed: {' '.join(exc.cmd[2:])} (exit {exc.returncode})")
        return 1
    finally:
        supervisor.stop()
        supervisor.say("stopped")


# --- the whole system as a child process (end-to-end tests and benchmarks) ------------------

BANNER = "The air-ticket system is running."
# Variables a test or benchmark process sets for itself that must not leak into the system.
_NOT_INHERITED = {
    "AWS_ENDPOINT_URL",
    "DJANGO_SETTINGS_MODULE",
    "CDC_LOCAL_POLLER",
    "EMAIL_BACKEND",
    "AIRTICKET_ENV",
    "MOTO_TEST_PORT",
    "DATABASE_URL",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_environment(**overrides: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(PORT=str(free_port()), MOTO_PORT=str(free_port()), PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


def spawn(env: dict, log: Path) -> subprocess.Popen:
    """`manage.py runlocal` in the background, its output in `log`."""
    if env.get("DATABASE_URL", "").startswith("mysql"):
        subprocess.run(manage("ensure_database"), env=env, cwd=BASE_DIR, check=True, capture_output=True)
    with log.open("w") as sink:
        return subprocess.Popen(manage("runlocal"), env=env, cwd=BASE_DIR, stdout=sink, stderr=subprocess.STDOUT)


def wait_running(process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if BANNER in log.read_text():
            return
        if process.poll() is not None:
            raise RuntimeError(f"runlocal exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"runlocal did not come up in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def interrupt(process: subprocess.Popen, timeout: float = 30) -> int:
    """Ctrl-C, as a user stops it; returns the exit code (kills it if it hangs)."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
