#!/usr/bin/env python3
"""redis-expiry.py - does Redis reclaim short-lived keys that sit among many long-lived ones?

The 25M shape's run (h) (README): every user's values warmed into Redis with long TTLs
(about 550,000 keys), then the user states of the mix's ratings stored with a 40 s TTL. This
replays that shape against a Redis of its own, without the origin: 550,000 keys of 300 bytes
with a day's TTL, then 200 keys a second of 3,000 bytes with a 40 s TTL, printing every 10 s
how much `used_memory` grew and how many keys Redis has expired. If expired keys were
reclaimed promptly, the growth would level off at about 200 x 40 x 3 KB = 24 MB after 40 s.

    redis-server --port 6399 --save "" --appendonly no --daemonize yes
    scripts/redis-expiry.py --port 6399 --seconds 150
    redis-cli -p 6399 CONFIG SET active-expire-effort 10; redis-cli -p 6399 FLUSHALL
    scripts/redis-expiry.py --port 6399 --seconds 150

It FLUSHALLs nothing itself but writes 600,000+ keys: point it only at a Redis of its own.
Standard library only (a RESP client of a few lines).
"""
import argparse
import socket
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=int, default=150)
    parser.add_argument("--long-keys", type=int, default=550_000)
    parser.add_argument("--rate", type=int, default=200, help="short-lived keys a second")
    parser.add_argument("--ttl", type=int, default=40, help="their TTL in seconds")
    args = parser.parse_args()
    redis = Resp(args.port)
    small, big = b"x" * 300, b"y" * 3000
    for start in range(0, args.long_keys, 5000):
        end = min(start + 5000, args.long_keys)
        redis.pipeline([("SET", f"long:{i}", small, "EX", 86400) for i in range(start, end)])
    base = int(redis.info("used_memory"))
    # A counter since the server started: counted from here.
    expired_before = int(redis.info("expired_keys"))
    print(f"after {args.long_keys} long-lived keys: used_memory {base / 1e6:.1f} MB", flush=True)
    written, started = 0, time.time()
    for second in range(args.seconds):
        redis.pipeline(
            [("SET", f"short:{written + i}", big, "EX", args.ttl) for i in range(args.rate)]
        )
        written += args.rate
        if second % 10 == 9:
            grown = (int(redis.info("used_memory")) - base) / 1e6
            keys = redis.pipeline([("DBSIZE",)])[0].decode().strip(":\r\n")
            print(
                f"t={second + 1:4d} s  used_memory +{grown:6.1f} MB  keys {keys}  "
                f"expired {int(redis.info('expired_keys')) - expired_before} "
                f"(of {max(0, written - args.rate * args.ttl)} due)",
                flush=True,
            )
        time.sleep(max(0.0, started + second + 1 - time.time()))


class Resp:
    """Just enough of RESP2 for SET, DBSIZE and INFO, pipelined."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    @staticmethod
    def encode(args):
        out = b"*%d\r\n" % len(args)
        for arg in args:
            arg = arg if isinstance(arg, bytes) else str(arg).encode()
            out += b"$%d\r\n%s\r\n" % (len(arg), arg)
        return out

    def reply(self):
        line = self.file.readline()
        if line[:1] == b"$":
            length = int(line[1:])
            return None if length < 0 else self.file.read(length + 2)[:-2]
        if line[:1] == b"-":
            raise RuntimeError(line.decode().strip())
        return line

    def pipeline(self, commands):
        self.sock.sendall(b"".join(self.encode(c) for c in commands))
        return [self.reply() for _ in commands]

    def info(self, field):
        for line in self.pipeline([("INFO", "all")])[0].decode().splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1]
        return None


if __name__ == "__main__":
    main()
