"""The SCCP (Skinny) side of a CallManager node, pure: station messages in, messages out.

Issue 15 item 2 (docs/sccp.md, "Registration in the emulated cluster"). Used by the in-memory
backend (:mod:`phone.net.memory`) and the socket listener (:mod:`phone.net.sccp`) alike: one
:class:`SccpStation` per TCP (2000) or TLS (2443) connection, made by
:meth:`SccpService.open`.

1. **Which device.** StationRegister's device name is ``SEP<MAC>``; the device record is looked
   up by that MAC. Another name is refused.
2. **Unknown devices** auto-register when the ``autoregistration`` parameter is on (item 6; the
   record's model comes from the StationRegister device type), else RegisterReject with
   :data:`REJECT_UNKNOWN`, "Error DBConfig": the phone then shows "Registration Rejected: Error
   DBConfig" (Cisco TechNote 112068, auto-registration disabled on the CallManager).
3. **Signaling authentication** (seed; item 7): the same rule as SIP
   (:func:`phone.cluster.signaling.signaling_problem`): a device in authenticated or encrypted
   mode (in a mixed-mode cluster) must come over TLS (port 2443) with a client certificate (its
   LSC or MIC) from a CAPF-trust anchor naming it. A refusal is RegisterReject with
   ``No Authority: SEP<MAC>`` -- Asterisk chan_skinny's text for a device it refuses; CUCM's
   text is not public [G] -- and the full reason goes to the cluster log.
4. **Registered.** Accepted: RegisterAck (keepalive 30 s, the CUCM default Station Keepalive
   Interval; secondary 60 s [G]; date template ``M/D/Y``; protocol version the lower of the
   phone's and 17 [G]) and straight after it CapabilitiesReq. The phone counts as registered
   once it answers CapabilitiesRes [G: docs/sccp.md]: only then :meth:`Cluster.register` runs,
   with the ITL report if the phone sent one (item 30, the emulated message of
   :mod:`phone.wire.sccp.emulated` [G]).
5. **Staying registered**: KeepAlive gets KeepAliveAck; Unregister gets UnregisterAck and
   :meth:`Cluster.unregister` (its ITL File Status row goes). The configuration requests
   (ButtonTemplateReq, ConfigStatReq, LineStatReq, TimeDateReq) are answered from the device
   record; other messages are ignored, as a CallManager ignores what it does not expect.
"""

from __future__ import annotations

import re
from datetime import datetime

from phone.cluster.cluster import Cluster
from phone.cluster.records import Device
from phone.cluster.signaling import ItlReportValue, Source, signaling_problem
from phone.errors import FormatError
from phone.wire.sccp import (
    DEVICE_TYPES,
    Button,
    ButtonTemplateReq,
    ButtonTemplateRes,
    CapabilitiesReq,
    CapabilitiesRes,
    ConfigStatReq,
    ConfigStatRes,
    DefineTimeDate,
    KeepAlive,
    KeepAliveAck,
    LineStatReq,
    LineStatRes,
    Message,
    RegisterAck,
    RegisterReject,
    StationRegister,
    TimeDateReq,
    Unknown,
    Unregister,
    UnregisterAck,
)
from phone.wire.sccp.emulated import ITL_REPORT_ID, read_itl_report

__all__ = [
    "KEEPALIVE",
    "PROTOCOL_VERSION",
    "REJECT_UNKNOWN",
    "SccpService",
    "SccpStation",
    "reject_text",
]

REJECT_UNKNOWN = "Error DBConfig"  # TechNote 112068: "Registration Rejected: Error DBConfig"
KEEPALIVE = 30  # s: CUCM's default Station Keepalive Interval
SECONDARY_KEEPALIVE = 60  # s [G]
PROTOCOL_VERSION = 17  # [G] the highest version the emulated CallManager speaks
_NAME = re.compile(r"SEP([0-9A-F]{12})")
_MODELS = {code: model for model, code in DEVICE_TYPES.items()}


def reject_text(device_name: str) -> str:
    """The RegisterReject text for a device refused by signaling authentication [G]."""
    return f"No Authority: {device_name}"[:31]


class SccpStation:
    """One station connection to node ``host`` of ``cluster`` (module docstring).

    Not thread-safe: the socket listener serializes calls under the lab lock.
    """

    def __init__(self, cluster: Cluster, host: str, source: Source) -> None:
        self.cluster = cluster
        self.host = host
        self.source = source
        self.mac: str | None = None  # set once StationRegister was accepted
        self.model: str | None = None
        self.registered = False
        self.finished = False
        self.rejected: str | None = None  # the RegisterReject text sent, if any
        self._report: ItlReportValue | None = None

    def receive(self, message: Message | Unknown, now: datetime) -> list[Message]:
        """The CallManager's answers to one station message."""
        if isinstance(message, StationRegister):
            return self._register(message, now)
        if isinstance(message, Unknown):
            if message.message_id == ITL_REPORT_ID:
                try:
                    self._report = ItlReportValue(*read_itl_report(message))
                except FormatError as exc:
                    self.cluster.note(
                        now, f"{self._who()}: ITL report ignored: {exc}", service="CallManager"
                    )
            return []
        if isinstance(message, KeepAlive):
            return [KeepAliveAck()]
        if self.mac is None:
            return []  # nothing but StationRegister and KeepAlive before a registration
        if isinstance(message, CapabilitiesRes):
            return self._capabilities(now)
        if isinstance(message, Unregister):
            self.cluster.unregister(self.mac, now=now)
            self.registered = False
            self.finished = True
            return [UnregisterAck(0)]
        return self._configuration(message, now)

    def _who(self) -> str:
        where = f"{self.source.host}:{self.source.port}/{self.source.transport}"
        return f"SCCP {self.host} from {where}"

    def _refuse(self, text: str, why: str, now: datetime) -> list[Message]:
        self.cluster.note(
            now, f"{self._who()}: RegisterReject {text!r}: {why}", service="CallManager"
        )
        self.rejected = text
        self.finished = True
        return [RegisterReject(text=text)]

    def _register(self, message: StationRegister, now: datetime) -> list[Message]:
        if self.mac is not None:
            return []  # already registered on this connection: a second one is ignored
        name = message.device_name.upper()
        match = _NAME.fullmatch(name)
        if match is None:
            return self._refuse(reject_text(name), f"device name {name!r} is not SEP<MAC>", now)
        mac = match.group(1)
        device: Device | None = self.cluster.device(mac)
        if device is None:
            if not self.cluster.parameters.autoregistration:
                self.cluster.register(mac, now=now)  # logs the rejection
                return self._refuse(
                    REJECT_UNKNOWN, f"{name} is not configured and auto-registration is off", now
                )
        else:
            problem = signaling_problem(self.cluster, device, self.source, now)
            if problem is not None:
                return self._refuse(reject_text(name), problem, now)
        self.mac = mac
        self.model = _MODELS.get(message.device_type)
        version = min(message.protocol_version, PROTOCOL_VERSION)
        ack = RegisterAck(
            keepalive=KEEPALIVE,
            date_template="M/D/Y",
            secondary_keepalive=SECONDARY_KEEPALIVE,
            protocol_version=version,
        )
        return [ack, CapabilitiesReq()]

    def _capabilities(self, now: datetime) -> list[Message]:
        assert self.mac is not None
        if self.registered:
            return []
        outcome = self.cluster.register(
            self.mac, now=now, model=self.model, itl_report=self._report
        )
        if not outcome.accepted:
            return self._refuse(REJECT_UNKNOWN, outcome.reason, now)
        self.registered = True
        return []

    def _configuration(self, message: Message, now: datetime) -> list[Message]:
        assert self.mac is not None
        name = f"SEP{self.mac}"
        if isinstance(message, ButtonTemplateReq):
            return [ButtonTemplateRes(offset=0, total=1, buttons=(Button(1, 9),))]
        if isinstance(message, ConfigStatReq):
            return [ConfigStatRes(device_name=name, server_name=self.host[:39], lines=1)]
        if isinstance(message, LineStatReq):
            return [LineStatRes(line=message.line, display_name=name, label=name)]
        if isinstance(message, TimeDateReq):
            return [
                DefineTimeDate(
                    year=now.year,
                    month=now.month,
                    day_of_week=(now.weekday() + 1) % 7,
                    day=now.day,
                    hour=now.hour,
                    minute=now.minute,
                    second=now.second,
                    system_time=int(now.timestamp()),
                )
            ]
        return []


class SccpService:
    """The SCCP side of CallManager node ``host`` of ``cluster``: opens station sessions."""

    def __init__(self, cluster: Cluster, host: str) -> None:
        self.cluster = cluster
        self.host = cluster.node(host).hostname

    def open(self, source: Source) -> SccpStation:
        """A new station connection from ``source``."""
        return SccpStation(self.cluster, self.host, source)
