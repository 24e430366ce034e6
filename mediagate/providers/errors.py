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
    """Our credentials or account at the provider are wrong (auth, arrears, balance, no
    resource pack, no permission): an operator problem, logged loudly, failed over."""

    concern = "CREDENTIALS"


class ProviderMisconfigured(ProviderAuthError):
    """The provider refuses how we are set up, not this task (Kling 1304 IP whitelist,
    1202/1203 wrong method or resource): an operator problem, logged loudly, failed over."""

    concern = "CONFIGURATION"


class ProviderDeclined(ProviderError):
    """The provider failed this task and says retrying will not help (fal
    `X-Fal-Retryable: false`): not the user's fault, so the next provider may try; if
    none does, the task fails with `error_type`."""

    def __init__(
        self, provider: str, message: str, *, error_type: str = "generation_failed"
    ) -> None:
        super().__init__(provider, message)
        self.error_type = error_type


class ProviderRetryable(ProviderError):
    """Rate limit, concurrency limit, 5xx, timeout or a garbled answer: try again later
    (or another provider, if this happened before it accepted the task)."""

    def __init__(self, provider: str, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(provider, message)
        self.retry_after_s = retry_after_s


class SubmitOutcomeUnknown(ProviderError):
    """The submit request may have reached the provider (e.g. a read timeout): it must be
    looked up, never blindly sent again or to another provider."""


POLICY_WORDS = (
    "policy",
    "safety",
    "sensitive",
    "nsfw",
    "inappropriate",
    "risk",
    # Kling answers in Chinese too; its failure text is not documented word for word, so
    # the usual wording of content moderation: 风控 risk control, 敏感 sensitive, 违规
    # violation, 审核 review, 不合规 non-compliant, 安全 safety.
    "风控",
    "敏感",
    "违规",
    "审核",
    "不合规",
    "安全",
)


def looks_like_policy(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in POLICY_WORDS)
