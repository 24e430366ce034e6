"""The OpenAI-compatible door under /v1: OpenAI's Images API shapes over the catalog's
image models, running the normal task pipeline and answering synchronously."""
