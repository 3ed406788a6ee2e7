#!/usr/bin/env python3
"""An MJPEG source for bench/memory.sh: answers every GET with multipart/x-mixed-replace frames
(100 KiB each, as mjpg-streamer sends them: no Content-Length for the whole) until SIZE_MIB
have gone out, then closes. Usage: mjpeg-source.py PORT SIZE_MIB"""
import socketserver
import sys

PORT, SIZE_MIB = int(sys.argv[1]), int(sys.argv[2])
FRAME = b"\xff\xd8" + bytes(100 * 1024 - 4) + b"\xff\xd9"
PART = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(FRAME) + FRAME + b"\r\n"


class Stream(socketserver.StreamRequestHandler):
    def handle(self):
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
        for _ in range(SIZE_MIB * 1024 * 1024 // len(PART) + 1):
            self.wfile.write(PART)


socketserver.TCPServer.allow_reuse_address = True
with socketserver.TCPServer(("127.0.0.1", PORT), Stream) as server:
    server.serve_forever()
