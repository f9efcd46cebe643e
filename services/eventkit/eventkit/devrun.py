"""`make run`: check PostgreSQL and RabbitMQ, set up the broker's users, create and migrate each service's database
(migrations as its owner, the service's runtime role created), start them all.

Each service runs as its own process (as in production); Ctrl-C stops them together.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

ALL_SERVICES = ("intake", "scheduling", "billing", "reporting", "desk")
# Where staff open the desk console (localhost: the browser keeps its Secure session cookie over plain HTTP).
DESK_URL = "http://localhost:{port}"


def installed_services() -> list[str]:
    wanted = [name for name in os.environ.get("SERVICES", " ".join(ALL_SERVICES)).split() if name]
    return [name for name in wanted if importlib.util.find_spec(name) and importlib.util.find_spec(f"{name}.__main__")]


def main() -> None:
    services = installed_services()
    # Each service's broker user, its permissions and the exchanges (the services may not declare them).
    if subprocess.run([sys.executable, "-m", "eventkit.broker_users"], check=False).returncode != 0:
        raise SystemExit(2)
    for service in services:
        # `check` creates the database if missing and prints one clear line when something is unreachable.
        if subprocess.run([sys.executable, "-m", service, "check"], check=False).returncode != 0:  # noqa: S603
            raise SystemExit(2)
        subprocess.run([sys.executable, "-m", service, "migrate"], check=True)  # noqa: S603
    processes = {service: subprocess.Popen([sys.executable, "-m", service, "serve"])  # noqa: S603
                 for service in services}
    print(f"started {', '.join(services)}; Ctrl-C stops them", file=sys.stderr)
    if "desk" in processes:
        url = DESK_URL.format(port=os.environ.get("DESK_HTTP_PORT", "8000"))
        print(f"open the desk console at {url} (development sign-in: pick a name and roles)", file=sys.stderr)
    try:
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        failed = [name for name, process in processes.items() if process.poll() is not None]
        print(f"stopped unexpectedly: {', '.join(failed)}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
