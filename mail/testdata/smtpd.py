#!/usr/bin/python3
"""A real SMTP server for the mail package's tests (Debian python3-aiosmtpd).

Every message it accepts is written to --dir as one JSON file: the
envelope, the raw message, whether the session was encrypted and who
logged in. It prints "ready" once it listens and runs until killed.

  smtpd.py --port N --dir D [--mode plain|starttls|tls] [--cert C --key K]
           [--user U --password P] [--reject-rcpt SUBSTRING]

plain offers no STARTTLS; starttls offers it (and requires it before
MAIL); tls is implicit TLS from the first byte. With --user, AUTH is
required, and offered only over TLS unless --auth-without-tls. Recipients
containing --reject-rcpt are refused with 550 5.1.1.
"""
import argparse
import json
import os
import ssl
import sys
import threading
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, directory, reject):
        self.directory = directory
        self.reject = reject

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and self.reject in address:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "login": auth.login.decode() if isinstance(auth, LoginPassword) else None,
        }
        name = "%d-%s.json" % (time.time_ns(), uuid.uuid4().hex)
        tmp = os.path.join(self.directory, "." + name)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 2.0.0 accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--reject-rcpt")
    p.add_argument("--auth-without-tls", action="store_true")
    a = p.parse_args()

    kwargs = {}
    ctx = None
    if a.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
    if a.mode == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.user:
        def authenticator(server, session, envelope, mechanism, data):
            ok = (isinstance(data, LoginPassword) and data.login.decode() == a.user
                  and data.password.decode() == a.password)
            return AuthResult(success=ok, auth_data=data if ok else None)
        # aiosmtpd counts only STARTTLS as TLS: implicit TLS is, too.
        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=not a.auth_without_tls and a.mode != "tls")

    controller = Controller(Recorder(a.dir, a.reject_rcpt), hostname="127.0.0.1", port=a.port,
                            ssl_context=ctx if a.mode == "tls" else None,
                            server_hostname="smtp.test", enable_SMTPUTF8=True, **kwargs)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
