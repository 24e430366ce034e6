"""How an upstream answer is classified. Adapters raise these; the runner decides what a
class means for the task (fail it for the user, fail over, or retry with backoff)."""


class ProviderError(Exception):
    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message


class ProviderRejected(ProviderError):
    """The provider refused this task for a reason the user can act on (content policy,
    an input it cannot use). Not the provider's fault: no failover, no retry."""

    def __init__(
        self, provider: str, message: str, *, error_type: str = "generation_failed"
    ) -> None:
        super().__init__(provider, message)
        self.error_type = error_type


class ProviderAuthError(ProviderError):
    """Our credentials or account at the provider are wrong (auth, arrears, no resource
    pack, no permission): an operator problem, logged loudly."""


class ProviderRetryable(ProviderError):
    """Rate limit, concurrency limit, 5xx, timeout or a garbled answer: try again later
    (or another provider, if this happened before it accepted the task)."""

    def __init__(self, provider: str, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(provider, message)
        self.retry_after_s = retry_after_s


class SubmitOutcomeUnknown(ProviderError):
    """The submit request may have reached the provider (e.g. a read timeout): it must be
    looked up, never blindly sent again or to another provider."""


POLICY_WORDS = ("policy", "safety", "sensitive", "nsfw", "inappropriate", "risk")


def looks_like_policy(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in POLICY_WORDS)
