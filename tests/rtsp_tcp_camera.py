"""A camera's own RTSP server that speaks only RTSP over TCP (RTP interleaved in the RTSP connection).

IP cameras serve RTSP themselves, and behind NAT or a firewall only the TCP transport gets through,
so that is nonsite's default. rtsp-server-perl (the tests' other server) offers UDP only; this is
GStreamer's RTSP server, run by Debian's python3 (python3-gi, gir1.2-gst-rtsp-server-1.0). It serves
an H.264 MP4 of real footage as H.264 over RTP in real time (paced by the file's timestamps; every
client that connects is played the file from its start), and refuses a client that asks for UDP.

    /usr/bin/python3 tests/rtsp_tcp_camera.py PORT PATH VIDEO.mp4
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402 - after the versions are chosen


def main() -> None:
    port, path, video = sys.argv[1:4]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{video}" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )')
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    server.get_mount_points().add_factory(f"/{path}", factory)
    server.attach(None)
    print("serving", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
