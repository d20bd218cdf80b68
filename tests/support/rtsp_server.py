#!/usr/bin/python3
"""A small RTSP server on loopback for the camera tests (tests/integration/test_camera_rtsp.cpp).

GStreamer's RTSP server (Debian 12: gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base and
-good, python3-gi; scripts/install-deps). Video is RTP/JPEG (RFC 2435), which FFmpeg, and so
OpenCV's FFmpeg backend, reads:
  --file PATH   an MJPG AVI (cv::VideoWriter's "MJPG"), in real time, from its start for every
                new session; it is not looped
  (no --file)   GStreamer's moving-ball test pattern, 320x240 at 10 fps, live

Mount points, all serving the same video:
  /any    RTP over TCP (interleaved) or UDP, as the client asks
  /tcp    TCP only: a client asking for UDP gets 461 Unsupported Transport
  /udp    UDP only
With --user USER:PASSWORD every mount requires that user (RTSP Basic authentication): a client
without it, or with another password, gets 401 Unauthorized.

Listens on 127.0.0.1:--port only. Prints "listening on 127.0.0.1:<port>" once it is bound. Runs
until SIGTERM or SIGINT (or SIGKILL: the tests kill it to simulate a camera that disappears).
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def launch_line(path):
    if path:
        # Decoded and encoded again: RTP/JPEG (RFC 2435) carries no Huffman tables, the receiver
        # assumes the standard ones, and OpenCV's MJPG writer does not use them.
        src = ('filesrc location="%s" ! avidemux ! queue ! jpegdec ! videoconvert ! '
               "jpegenc quality=85" % path.replace('"', '\\"'))
    else:
        src = ("videotestsrc is-live=true pattern=ball ! "
               "video/x-raw,width=320,height=240,framerate=10/1 ! jpegenc quality=80")
    return "( %s ! rtpjpegpay name=pay0 pt=26 )" % src


def role_token(role):
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
    return token


def factory(line, protocols, auth_role=None):
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(line)
    f.set_shared(False)  # every session from the start of the file
    f.set_protocols(protocols)
    if auth_role:
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role(auth_role, "media.factory.access", True)
        perms.add_permission_for_role(auth_role, "media.factory.construct", True)
        f.set_permissions(perms)
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", default="")
    ap.add_argument("--user", default="", help="USER:PASSWORD for /auth")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    line = launch_line(args.file)
    tcp = GstRtsp.RTSPLowerTrans.TCP
    udp = GstRtsp.RTSPLowerTrans.UDP
    role = None
    if args.user:
        user, _, password = args.user.partition(":")
        auth = GstRtspServer.RTSPAuth()
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), role_token("viewer"))
        server.set_auth(auth)
        role = "viewer"
    mounts = server.get_mount_points()
    mounts.add_factory("/any", factory(line, tcp | udp, role))
    mounts.add_factory("/tcp", factory(line, tcp, role))
    mounts.add_factory("/udp", factory(line, udp, role))

    if server.attach(None) == 0:
        print("cannot listen on 127.0.0.1:%d" % args.port, flush=True)
        return 1
    print("listening on 127.0.0.1:%d" % server.get_bound_port(), flush=True)
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
