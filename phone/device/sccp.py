"""The phone's side of an SCCP registration, sans-IO (issue 15 item 3; docs/sccp.md).

:class:`SccpClient` is what a backend drives (:class:`phone.device.port.SccpConversation`):

1. :meth:`SccpClient.start`: StationRegister in its 124-byte form (device name ``SEP<MAC>``,
   the model's device type, protocol version 17 [G], the MAC and the running load), then, when
   the phone holds an ITL, the emulated ITL report (:mod:`phone.wire.sccp.emulated` [G]);
2. RegisterAck is noted; CapabilitiesReq is answered with CapabilitiesRes (G.711 u-law and
   A-law, G.729 [G]) and a KeepAlive, so that the KeepAliveAck proves the CallManager took the
   capabilities: the phone counts as registered then [G: docs/sccp.md];
3. RegisterReject ends it with the CallManager's text.

:attr:`SccpClient.result` is the :class:`phone.device.port.RegisterResult` (code 200 when
registered; 403 and the RegisterReject text as the reason when refused).
"""

from __future__ import annotations

from ipaddress import IPv4Address

from phone.device.port import ItlReport, RegisterResult, Requester
from phone.wire.sccp import (
    DEVICE_TYPES,
    CapabilitiesReq,
    CapabilitiesRes,
    Capability,
    KeepAlive,
    KeepAliveAck,
    Message,
    RegisterAck,
    RegisterExtension,
    RegisterReject,
    StationRegister,
    Unknown,
)
from phone.wire.sccp.emulated import itl_report_message

__all__ = ["CAPABILITIES", "PROTOCOL_VERSION", "SccpClient", "sccp_device_type"]

PROTOCOL_VERSION = 17  # [G] what the emulated 9.x loads announce
CAPABILITIES = (Capability(4), Capability(2), Capability(9, 20))  # G.711u, G.711a, G.729 [G]


def sccp_device_type(model: str) -> int:
    """The StationRegister device type of a catalogue model (``7925G`` is Wireshark's 7925);
    0 for a model without one."""
    return DEVICE_TYPES.get(model, DEVICE_TYPES.get(model.removesuffix("G"), 0))


class SccpClient:
    """One SCCP registration attempt (module docstring)."""

    def __init__(
        self,
        requester: Requester,
        *,
        load: str,
        itl_report: ItlReport | None = None,
        callmanager: str = "",
    ) -> None:
        self.requester = requester
        self.load = load
        self.itl_report = itl_report
        self.callmanager = callmanager
        self.acked: RegisterAck | None = None
        self.result: RegisterResult | None = None
        self._capabilities_sent = False

    @property
    def finished(self) -> bool:
        """True once registered or rejected."""
        return self.result is not None

    def register_message(self) -> StationRegister:
        """The StationRegister this phone sends."""
        mac = bytes.fromhex(self.requester.mac)
        try:
            ip = IPv4Address(self.requester.address)
        except ValueError:
            ip = IPv4Address(0)
        return StationRegister(
            device_name=self.requester.device_name,
            ip=ip,
            device_type=sccp_device_type(self.requester.model),
            protocol_version=PROTOCOL_VERSION,
            extension=RegisterExtension(
                mac=mac + bytes(6), max_lines=1, firmware_load=self.load[:31]
            ),
        )

    def start(self) -> list[Message | Unknown]:
        """StationRegister, then the emulated ITL report when the phone holds an ITL."""
        out: list[Message | Unknown] = [self.register_message()]
        report = self.itl_report
        if report is not None:
            out.append(itl_report_message(report.tftp_host, report.itl_hash, report.timestamp))
        return out

    def receive(self, message: Message | Unknown) -> list[Message | Unknown]:
        """Answer one CallManager message (module docstring)."""
        if self.finished:
            return []
        if isinstance(message, RegisterReject):
            self.result = RegisterResult(False, 403, message.text)
            return []
        if isinstance(message, RegisterAck):
            self.acked = message
            return []
        if isinstance(message, CapabilitiesReq) and self.acked is not None:
            self._capabilities_sent = True
            return [CapabilitiesRes(capabilities=CAPABILITIES), KeepAlive()]
        if isinstance(message, KeepAliveAck) and self._capabilities_sent:
            self.result = RegisterResult(True, 200, "registered (RegisterAck, CapabilitiesRes)")
            return []
        return []
