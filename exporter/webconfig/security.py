"""The live security object `--web.config.file` describes: a TLS context and basic auth."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.webconfig.auth import BasicAuth
from exporter.webconfig.tls import TLSSettings, build_context


class WebConfigError(Exception):
    """An invalid web config; `problems` lists every problem found, each naming where."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else (*problems,)
        super().__init__("; ".join(self.problems))


@dataclass(eq=False)
class WebConfig:
    """Implements exporter.web.WebSecurity; safe to use from many threads.

    Built from its settings, it builds its context itself (WebConfigError when the
    files are unusable); the schema passes the context it already built while
    checking the files, so they are read once.
    """

    tls: TLSSettings | None = None
    # user -> bcrypt hash; kept out of repr so it never reaches a log line.
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    context: ssl.SSLContext | None = field(default=None, repr=False, kw_only=True)
    _auth: BasicAuth = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._auth = BasicAuth(self.users)
        if self.tls is not None and self.context is None:
            context, problems = build_context(self.tls)
            if problems:
                raise WebConfigError([problem.text for problem in problems])
            self.context = context

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.context

    def authorized(self, authorization: str | None) -> bool:
        """Whether an Authorization header value grants access (always, without users)."""
        return self._auth.authorized(authorization)
