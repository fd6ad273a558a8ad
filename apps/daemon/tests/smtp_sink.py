"""A real SMTP server for respackd's tests (aiosmtpd): stores every message it receives as
<out>/<n>.eml, written to a temporary name first so a reader never sees half a message.
Usage: python smtp_sink.py PORT OUT_DIR; prints "ready" when listening; runs until killed."""

import os
import pathlib
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = pathlib.Path(out)
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            name = f"{os.getpid()}-{self.count}"
        tmp = self.out / f".{name}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.out / f"{name}.eml")
        return "250 OK"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
