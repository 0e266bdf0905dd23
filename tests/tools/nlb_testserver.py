#!/usr/bin/env python3
"""Test server for end-to-end tests and the demo: answers with its host priority.

TCP: every line received is answered with "<priority>\\n"; a first line starting with "GET "
gets a minimal HTTP/1.0 response whose body is "host <priority>\\n" (so curl works too).
UDP: every datagram is answered with "<priority>\\n", from the address it was sent to (one
socket per --vip, bound with IP_FREEBIND so the server may start before the agent adds the
VIP). A datagram "id <ID>\\n" (nlb_testclient.py stream) is answered "<priority> <ID>\\n" and,
with --log FILE, logged there as one line "<ID> <priority> <receive time, CLOCK_REALTIME>"
(line-buffered, so the file is complete at any time). With --delay-file, every TCP answer
waits the seconds that file holds (a slow server). Runs until killed.
"""
import argparse
import asyncio
import socket
import time

IP_FREEBIND = 15
SO_RCVBUFFORCE = 33


class Udp(asyncio.DatagramProtocol):
    def __init__(self, answer, log=None):
        self.answer = answer
        self.log = log

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if data.startswith(b"id "):
            rid = data[3:].split(b"\n", 1)[0].strip()
            if rid.isdigit():
                if self.log:
                    self.log.write(f"{rid.decode()} {self.answer.decode().strip()} "
                                   f"{time.time():.6f}\n")
                self.transport.sendto(self.answer.rstrip(b"\n") + b" " + rid + b"\n", addr)
                return
        self.transport.sendto(self.answer, addr)


async def serve(args):
    answer = f"{args.priority}\n".encode()
    body = f"host {args.priority}\n".encode()

    def delay():
        # --delay-file: seconds to wait before each TCP answer, read anew for every answer so
        # a test makes this server slow and fast again without a restart.
        if not args.delay_file:
            return 0.0
        try:
            with open(args.delay_file) as f:
                return max(0.0, float(f.read().strip() or 0))
        except (OSError, ValueError):
            return 0.0

    async def tcp(reader, writer):
        try:
            while line := await reader.readline():
                if (d := delay()) > 0:
                    await asyncio.sleep(d)
                if line.startswith(b"GET "):
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(body), body))
                    await writer.drain()
                    break
                writer.write(answer)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    log = open(args.log, "a", buffering=1) if args.log else None
    servers = []
    for port in args.ports:
        servers.append(await asyncio.start_server(tcp, host=None, port=port, backlog=1024))
        for vip in args.vip:
            family = socket.AF_INET6 if ":" in vip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)  # IPv6 sockets honour it too
            # A large receive buffer, so that a server starved for a moment on a busy machine
            # answers late rather than losing requests (tests count every lost one).
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            sock.bind((vip, port))
            await loop.create_datagram_endpoint(lambda: Udp(answer, log), sock=sock)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--priority", type=int, required=True)
    p.add_argument("--vip", action="append", default=[], help="answer UDP sent to this VIP")
    p.add_argument("--log", help="log every \"id N\" UDP request: N, priority, time")
    p.add_argument("--delay-file", help="TCP: wait the seconds this file holds before answering")
    p.add_argument("ports", type=int, nargs="+")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
