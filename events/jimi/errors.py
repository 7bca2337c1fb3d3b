"""Every documented Open API error code as a typed exception (docs/jimi.md, "Error codes"), and the transport
failures a call can end in. `error_for(code, message, method)` picks the class; an undocumented code is
`UnknownCode`, never a crash."""

from __future__ import annotations


class JimiError(Exception):
    """A call to the Open API did not succeed. `retry` says whether the same request may succeed later as it is."""

    code: str = ""
    retry: bool = False

    def __init__(self, message: str = "", *, method: str = "", code: str | None = None) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}code {self.code or '?'} {message}".strip())


class TransportError(JimiError):
    """No Open API answer: connection refused or reset, a timeout, an HTTP error status, a body that is not the
    JSON envelope. Retried by the next poll, never inside this one."""


class SystemBusy(JimiError):
    code = "-1"
    retry = True


class ParameterError(JimiError):
    """1001: a parameter is missing or malformed — also what a bad signature, a wrong app key or the wrong node
    look like (Q10). Fix the request; retrying the same one cannot help."""

    code = "1001"


class IllegalUserOrDevice(JimiError):
    """1002: the user or device is not the caller's (nor a subordinate's)."""

    code = "1002"


class RepeatedOperation(JimiError):
    """1003: the operation was already done; callers treat it as done."""

    code = "1003"


class TokenInvalid(JimiError):
    """1004: the access token is invalid, expired or unknown: log in again and retry once."""

    code = "1004"


class IpLimitExceeded(JimiError):
    """1005: this IP address is over its access limit: stop calling, an operator must look."""

    code = "1005"


class TooFrequent(JimiError):
    """1006: requests too frequent: back off, retry, poll less often."""

    code = "1006"
    retry = True


class WrongRequestMethod(JimiError):
    code = "1007"


class AbnormalInput(JimiError):
    code = "1008"


class BusinessException(JimiError):
    code = "1100"


class DeviceExists(JimiError):
    code = "1112"


class FenceNameExists(JimiError):
    code = "1114"


class DataNotArrived(JimiError):
    """1207 (media lists): the data has not arrived yet; poll again later."""

    code = "1207"


class AccountCreateFailed(JimiError):
    code = "12001"


class DeviceTransferFailed(JimiError):
    code = "12002"


class FenceCreateFailed(JimiError):
    code = "12003"


class FenceDeleteFailed(JimiError):
    code = "12004"


class CommandSendFailed(JimiError):
    code = "12005"


class OperationResult(JimiError):
    """The account, device-transfer, geofence and command result codes (213-220, 225-252, 41001-41004, 30010):
    documented as a family, for methods we do not call."""


class UnknownCode(JimiError):
    """A code Jimi's documentation does not list."""


ERRORS: dict[str, type[JimiError]] = {
    cls.code: cls
    for cls in (
        SystemBusy, ParameterError, IllegalUserOrDevice, RepeatedOperation, TokenInvalid, IpLimitExceeded,
        TooFrequent, WrongRequestMethod, AbnormalInput, BusinessException, DeviceExists, FenceNameExists,
        DataNotArrived, AccountCreateFailed, DeviceTransferFailed, FenceCreateFailed, FenceDeleteFailed,
        CommandSendFailed,
    )
}  # fmt: skip

OPERATION_RESULT_CODES = frozenset([*range(213, 221), *range(225, 253), *range(41001, 41005), 30010])


def error_for(code: object, message: str = "", *, method: str = "") -> JimiError:
    """The exception for a response's `code` (a number or a string: compared as a string)."""
    text = str(code).strip()
    cls = ERRORS.get(text)
    if cls is not None:
        return cls(message, method=method)
    if text.lstrip("-").isdigit() and int(text) in OPERATION_RESULT_CODES:
        return OperationResult(message, method=method, code=text)
    return UnknownCode(message, method=method, code=text)
