#!/usr/bin/env python3
"""Serves dist/ (or another folder) on 127.0.0.1 with the headers that make the page
cross-origin isolated (COOP/COEP), so the CPU path runs on every core without the page's
service worker. Usage: scripts/web-serve.py [DIR] [--port 8080] [--no-isolation]"""

import argparse
import functools
import http.server


class Handler(http.server.SimpleHTTPRequestHandler):
    isolate = True

    def end_headers(self):
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default="dist")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--no-isolation", action="store_true", help="send no COOP/COEP headers")
    args = parser.parse_args()
    Handler.isolate = not args.no_isolation
    handler = functools.partial(Handler, directory=args.dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    print(f"serving {args.dir} on http://127.0.0.1:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
