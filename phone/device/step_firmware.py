"""The UPGRADING step: fetch the load the config names, and install it only if it verifies.

What an image must satisfy (model family, format, a signing key the running firmware knows,
items 36-38) is decided in ``phone.trust.images``. A refused or missing load is remembered for
the boot cycle so the phone keeps booting its resident image instead of asking again (item 37).
"""

from __future__ import annotations

from phone.catalog.loads import image_filename
from phone.catalog.models import StatusKey
from phone.device import flash as names
from phone.device.core import PhoneCore
from phone.trust.decision import Status, Verdict
from phone.trust.images import evaluate_image


class FirmwareStep(PhoneCore):
    """The phone's UPGRADING state (a part of ``VirtualPhone``)."""

    def _step_upgrade(self) -> str:
        assert self.config is not None
        wanted = self.config.load_information
        name = image_filename(wanted)
        self._say(Status.UPGRADE_IN_PROGRESS)
        data = self._fetch("image", name)
        if data is None:
            self._cycle.failed_loads.add(wanted)
            self._say(Status.UPGRADE_FAILED)
            return "upgrade_failed"
        decision = evaluate_image(
            data,
            requested=wanted,
            model_family=self.model.load_family,
            image_format=self.model.image_format,
            known_key_ids=self.known_image_keys,
        )
        verdict = Verdict.ACCEPTED if decision.accepted else Verdict.REJECTED
        self._record("image", verdict, decision.rule, decision.reason, file=name)
        status = decision.status
        if status == Status.AUTH_FAIL:
            # The same refusal reads differently per family: "Auth Fail" on the Java 79xx and
            # 88xx, "File auth error" on the 7940/7960 [C41] (the model table's text).
            status = self.model.status(StatusKey.IMAGE_AUTH) or status
        if status:
            self._say(status)
        if not decision.accepted or decision.load is None:
            # Item 37: keep booting the resident image.
            self._cycle.failed_loads.add(wanted)
            self._say(Status.UPGRADE_FAILED)
            return "upgrade_failed"
        self.flash.write(names.IMAGE, data)
        self._settings["load"] = decision.load.name
        self._settings["known_image_keys"] = list(decision.load.known_key_ids)
        self._save_settings()
        return "upgraded"
