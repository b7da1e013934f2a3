"""A capture of the peer traffic on `lo` for the attack tests: a raw AF_PACKET socket (root),
keeping TCP payloads per connection and UDP datagrams to or from the given ports."""
import socket
import struct
import threading


class LoopbackSniffer:
    """Every TCP payload and UDP datagram on `lo` to or from one of `ports`, until stop()."""

    def __init__(self, ports):
        self.ports = set(ports)
        # (source port, destination port) -> the TCP payload bytes in the order seen.
        self.streams: dict[tuple[int, int], bytearray] = {}
        # (source port, destination port, payload) per UDP datagram.
        self.datagrams: list[tuple[int, int, bytes]] = []
        self.packets = 0
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            try:
                frame, address = self.sock.recvfrom(262144)
            except socket.timeout:
                continue
            # Each packet on lo shows up once outgoing and once incoming: keep the incoming copy.
            if address[2] == socket.PACKET_OUTGOING:
                continue
            # Ethernet header (14 bytes on lo), then IPv4.
            if len(frame) < 42 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            body = ip[(ip[0] & 0x0F) * 4:struct.unpack("!H", ip[2:4])[0]]
            if ip[9] == 6 and len(body) >= 20:
                source, destination = struct.unpack("!HH", body[:4])
                if source in self.ports or destination in self.ports:
                    self.packets += 1
                    payload = body[(body[12] >> 4) * 4:]
                    if payload:
                        self.streams.setdefault((source, destination), bytearray()).extend(payload)
            elif ip[9] == 17 and len(body) >= 8:
                source, destination = struct.unpack("!HH", body[:4])
                if source in self.ports or destination in self.ports:
                    self.packets += 1
                    self.datagrams.append((source, destination, bytes(body[8:])))

    def stop(self):
        self.done.set()
        self.thread.join()
        self.sock.close()

    def tcp_payload(self) -> bytes:
        """Every TCP payload captured, one connection after another."""
        return b"".join(bytes(s) for s in self.streams.values())
