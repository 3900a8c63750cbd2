"""The exception tree callers and the retrier act on. Messages are one clear line for the user."""


class TradegraphError(Exception):
    """Base of every error tradegraph raises on purpose."""


class ConfigError(TradegraphError):
    """A setting or command-line argument is invalid."""


class DataError(TradegraphError):
    """Market data is missing, malformed or fails validation."""


class JournalError(TradegraphError):
    """The journal cannot be opened, read or written."""


class GateDenied(TradegraphError):
    """An order was denied by the risk gate (raised only where a denial must abort a caller)."""


class ExchangeTemporaryError(TradegraphError):
    """A transient exchange failure: the retrier may try again."""


class LLMError(TradegraphError):
    """A language-model call failed or returned unusable output."""


class CassetteError(TradegraphError):
    """A cassette (recorded LLM answers) is missing an entry, malformed, or from another reasoner: the run stops."""


class ExchangePermanentError(TradegraphError):
    """The exchange refused a request for a reason a retry cannot fix (bad symbol, bad request, auth, ...)."""
