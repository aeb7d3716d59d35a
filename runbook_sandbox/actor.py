"""The simulated console actor, as the runbook's steps use it when ``sandbox_actor=true``.

It performs the human steps of the procedure in the sandbox's simulated AWS console (sign in
as root, remove a device, bind a new one) so a whole run can be unattended. It refuses to work
against anything but the sandbox. It returns what a person would report, never a code or seed.
"""

from __future__ import annotations

from typing import Any

from ._client import ControlApiError, ControlClient, control_token_of


class ActorRefused(ValueError):
    """The actor cannot work here (no endpoint, no control token, not a sandbox): the message
    says what to do. The runbook's plug-in point reports it as a parameter problem."""


class ConsoleActor:
    def __init__(
        self, endpoint_url: str | None, profile: str | None = None, token: str | None = None
    ) -> None:
        """``token``: the sandbox's control token; by default read from ``profile`` in the
        shared credentials file (``runbook sandbox --profiles-file`` writes it there)."""
        if not endpoint_url:
            raise ActorRefused(
                "sandbox_actor=true needs endpoint_url pointing at the "
                "runbook sandbox (`runbook sandbox`)"
            )
        token = token or control_token_of(profile)
        if not token:
            raise ActorRefused(
                f"sandbox_actor=true, but profile {profile or 'default'} holds no "
                "sandbox_control_token: write the sandbox's profiles with `runbook sandbox "
                "--profiles-file FILE` (or write_profiles(..., info.control_token))"
            )
        self.control = ControlClient(endpoint_url, timeout=10, token=token)
        try:
            self.control.info()
        except (ControlApiError, OSError, ValueError) as err:
            raise ActorRefused(
                f"sandbox_actor=true, but {endpoint_url} is not the runbook "
                f"sandbox ({type(err).__name__}); the simulated console "
                "actor exists only there"
            ) from err

    def remove_device(self, account_id: str, serial: str) -> dict[str, Any]:
        """Sign in as root, Security credentials > MFA > select the device > Remove."""
        session = self.control.sign_in_fully(account_id)
        try:
            removed = self.control.remove_mfa(session, serial)
        finally:
            self.control.sign_out(session)
        return {"removed": removed["removed"], "kind": removed["kind"]}

    def sign_in(self, account_id: str) -> dict[str, Any]:
        """Sign in as root: with the remaining MFA device, or the e-mailed one-time code.

        Without MFA, AWS then prompts the root user to register MFA (see ``_console``); the
        actor chooses *skip* and reports the prompt and its deadline (``mfa_prompt``). Past the
        deadline the console lets root proceed only by registering MFA: ``signed_in`` is
        False and ``mfa_registration_required`` True."""
        used, answer = self.control.sign_in_answer(account_id)
        self.control.sign_out(str(answer["session_id"]))
        result: dict[str, Any] = {
            "signed_in": answer["status"] == "signed_in",
            "second_factor": used,
        }
        prompt = answer.get("mfa_prompt")
        if prompt and prompt.get("shown"):
            result["mfa_prompt"] = {
                "shown": True,
                "deadline": prompt["deadline"],
                "choice": None if prompt["enforced"] else "skip",  # never registers here
            }
        if answer["status"] == "mfa_registration_required":
            result["mfa_registration_required"] = True
        return result

    def bind_virtual(self, account_id: str, name: str) -> dict[str, Any]:
        """Sign in, Assign MFA device > Authenticator app > scan QR > two consecutive codes."""
        session = self.control.sign_in_fully(account_id)
        try:
            serial = self.control.bind_virtual(session, name)
        finally:
            self.control.sign_out(session)
        return {"bound": serial}
