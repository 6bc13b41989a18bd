"""A second instance of the app for the tests, in a process of its own, on the tests' database:
`python -m tests.auth.instance DATABASE_URL PORT KEY_FILE` serves it on 127.0.0.1:PORT until
it is stopped. It has the tests' settings, so that the two instances agree as production hosts
sharing a database and a SECRET_KEY do."""

from __future__ import annotations

import sys

from werkzeug.serving import make_server

from referrals import create_app

TEST_SETTINGS = {
    "env": "test",
    "secret_key": "test-secret-key",
    "argon2_memory_kib": 1024,
    "argon2_time_cost": 1,
    "session_cookie_secure": False,
    "log_level": "WARNING",
}


def main() -> None:
    database_url, port, key_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = create_app({**TEST_SETTINGS, "database_url": database_url, "exchange_key_file": key_file})
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


if __name__ == "__main__":
    main()
