"""The whole system on one machine, supervised from one foreground process (`manage.py runlocal`).

Every part is a child process that reads its settings from the environment prepared here:
moto server (AWS), the DynamoDB-stream -> Kinesis bridge, the CDC poller, the flight-event
notifier and the web server. A crashed worker is reported and restarted with backoff; if moto
itself dies, everything stops. Ctrl-C (or SIGTERM) stops all children, newest first.

Restarts keep the data: moto keeps DynamoDB in LOCAL_STATE_DIR (`airticket.local.moto_server.Store`),
and after the consumers start, both sides are compared and the read model is brought back in
line through the stream (`cdc_lambda.consistency`). If the supervisor itself is killed (even
with kill -9), its children get SIGTERM from the kernel (Linux's parent-death signal) and moto
saves its snapshot; a new run waits for the old children to be gone (they hold the run lock).
`--fresh` (`make run FRESH=1`) and `make reset` start from nothing on purpose.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from airticket.local.locks import hold_exclusively

BASE_DIR = Path(__file__).resolve().parent.parent.parent
STAFF_USERNAME = "staff"
STAFF_PASSWORD = "staff-local-only"  # noqa: S105 - a local demo login, printed on start
DEFAULT_MOTO_PORT = "5000"


def local_environment(base: dict | None = None) -> dict:
    """The environment every child runs with: loopback moto, dummy credentials, local poller."""
    env = dict(os.environ if base is None else base)
    env.setdefault("LOCAL_STATE_DIR", str(BASE_DIR / "var" / "local"))
    port = env.setdefault("PORT", "8000")
    moto_port = env.setdefault("MOTO_PORT", DEFAULT_MOTO_PORT)
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


def _parent_death_signal():
    """A preexec function: the child gets SIGTERM when the supervisor dies, however it dies
    (prctl PR_SET_PDEATHSIG; Linux only, elsewhere orphans are left to the user)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_signal


_DIE_WITH_PARENT = _parent_death_signal()


class RunLock:
    """One system per state directory. Every child inherits the lock's file descriptor, so the
    lock is held until the last process of a run is gone: a run started right after a kill -9
    of the supervisor waits for the old children (stopping on their parent-death signal)
    instead of racing them for ports and for moto's files."""

    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.file = (state_dir / "runlocal.lock").open("a")

    def acquire(self, *, wait_seconds: float, say) -> None:
        hold_exclusively(
            self.file,
            wait_seconds=wait_seconds,
            refused=f"[runlocal] another run still uses {Path(self.file.name).parent}: stop it first",
            on_wait=lambda: say("a previous run is still stopping (or running); waiting for it"),
        )

    @property
    def fd(self) -> int:
        return self.file.fileno()


def forget_local_state(state_dir: Path) -> None:
    """DynamoDB's saved tables; the read database is flushed by the caller (`flush`)."""
    shutil.rmtree(state_dir / "moto", ignore_errors=True)


@dataclass
class Child:
    name: str
    argv: list[str]
    restartable: bool = True
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0


class Supervisor:
    def __init__(self, env: dict, out=sys.stdout, *, keep_fds: tuple[int, ...] = ()):
        self.env = env
        self.out = out
        self.children: list[Child] = []
        self.stopping = False
        self.keep_fds = keep_fds

    def say(self, message: str) -> None:
        self.out.write(f"[runlocal] {message}\n")
        self.out.flush()

    def run_step(self, *args: str) -> None:
        self.say("$ manage.py " + " ".join(args))
        subprocess.run(manage(*args), env=self.env, check=True, cwd=BASE_DIR)

    def start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.argv, env=self.env, cwd=BASE_DIR, start_new_session=True, pass_fds=self.keep_fds, preexec_fn=_DIE_WITH_PARENT
        )
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
        # `ingest` reaches moto itself (steps 10 and 11) and, in the user's shell, knows only the
        # default port: with MOTO_PORT set for this run the command must name the endpoint.
        endpoint = self.env["AWS_ENDPOINT_URL"]
        aws_option = "" if endpoint == f"http://127.0.0.1:{DEFAULT_MOTO_PORT}" else f" --aws-endpoint {endpoint}"
        lines = [
            "",
            "The air-ticket system is running.",
            f"  Admin portal   {base}/admin/   (login {STAFF_USERNAME} / {STAFF_PASSWORD})",
            f"  Operations     {base}/admin/admin_portal/shardcheckpoint/   (CDC checkpoints and lag, DLQ)",
            f"  Command API    {base}/api/v1/            e.g. POST {base}/api/v1/customers",
            f"  Query API      {base}/api/v1/query/      e.g. GET {base}/api/v1/query/passengers?flight_number=MU5159&flight_date=...",
            f"  API docs       {base}/api/v1/docs  (OpenAPI: {base}/api/v1/schema)",
            f"  Health         {base}/healthz",
            f"  AWS (moto)     {self.env['AWS_ENDPOINT_URL']}   (DynamoDB kept in {self.env['LOCAL_STATE_DIR']}; make reset starts afresh)",
            f"  Staff token    {token}",
            f"  Demo           {python} manage.py ingest --api {base}{aws_option} demo --keep   (the lab's demo, then a day to look at)",
            f"  Weather        {python} manage.py demo_weather   (alerts from now over the demo's cities)",
            "Ctrl-C stops everything.",
            "",
        ]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()


def worker_commands(env: dict) -> list[tuple[str, list[str]]]:
    """The restartable workers; the weather poller only when feeds are configured.
    `NOTIFIERS` (default 2, one per core here) notifier processes share the flight events:
    a mass cancellation's notices are claimed in chunks, so they never send one twice."""
    text = env.get("NOTIFIERS") or "2"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"NOTIFIERS must be a whole number of processes, at least 1, not {text!r}")
    count = int(text)
    notifiers = [(f"notifier-{i}", ["notify_flight_events", "--loop", "--worker", f"{i}/{count}"]) for i in range(1, count + 1)]
    workers = [("bridge", ["run_bridge"]), ("poller", ["run_poller"]), *notifiers]
    if env.get("WEATHER_SOURCES", "").strip():
        workers.append(("weather", ["poll_weather", "--loop"]))
    return workers


def run(out=sys.stdout, *, fresh: bool = False) -> int:
    env = local_environment()
    state_dir = Path(env["LOCAL_STATE_DIR"])
    lock = RunLock(state_dir)
    supervisor = Supervisor(env, out, keep_fds=(lock.fd,))
    stop_requested = []

    def on_signal(signum, frame):
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        lock.acquire(wait_seconds=30, say=supervisor.say)
        if fresh:
            supervisor.say(f"--fresh: starting from nothing (forgetting {state_dir / 'moto'}, flushing the read database)")
            forget_local_state(state_dir)
        moto_port = env["MOTO_PORT"]
        moto = [sys.executable, "-m", "airticket.local.moto_server", "127.0.0.1", moto_port, "--state", str(state_dir / "moto")]
        supervisor.start(Child("moto", moto, restartable=False))
        if not supervisor.wait_http(f"http://127.0.0.1:{moto_port}/moto-api/", timeout=300):  # restoring a big table takes a while
            raise SystemExit("[runlocal] moto server did not answer")
        supervisor.run_step("prepare_local", *(["--fresh"] if fresh else []))
        for name, args in worker_commands(env):
            supervisor.start(Child(name, manage(*args)))
        supervisor.start(Child("web", web_server(env["PORT"])))  # boots meanwhile; the banner waits for the check
        # The read database outlived the last run, and the streams did not: compare both sides
        # and send what the read model lacks (or holds too much of) through the stream.
        supervisor.run_step("check_consistency", "--repair")
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


def setup_steps(*, fresh: bool) -> list[list[str]]:
    """What `make run` does before it starts the consumers (`manage.py prepare_local` runs them in
    one process: a Django start-up costs seconds, and there are six steps)."""
    return [
        ["provision_aws"],
        ["ensure_database"],
        ["migrate", "--noinput", "-v", "0"],
        *([["flush", "--noinput"]] if fresh else []),
        ["load_airports"],
        ["load_demo_schedule"],
        ["ensure_staff_user", "--username", STAFF_USERNAME, "--password", STAFF_PASSWORD],
    ]


def run_steps_here(steps, out) -> None:
    """Management commands in this process, each announced as the supervisor announces its steps."""
    from django.core.management import call_command  # this module loads no Django settings by itself

    for step in steps:
        out.write("[runlocal] $ manage.py " + " ".join(step) + "\n")
        call_command(*step, stdout=out)


RESET_STEPS = (["ensure_database"], ["migrate", "--noinput", "-v", "0"], ["flush", "--noinput"])


def forget_saved_state(out=sys.stdout) -> RunLock:
    """`make reset`, first half: refuse while a run uses the state directory, forget DynamoDB's
    saved tables. Returns the held lock: the caller empties the read database (RESET_STEPS)
    before it lets go, so no run starts in between."""
    env = local_environment()
    state_dir = Path(env["LOCAL_STATE_DIR"])
    supervisor = Supervisor(env, out)
    lock = RunLock(state_dir)
    lock.acquire(wait_seconds=0, say=supervisor.say)
    forget_local_state(state_dir)
    supervisor.say(f"forgot DynamoDB's saved tables ({state_dir / 'moto'})")
    return lock


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
    "LOCAL_STATE_DIR",
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
