"""`--web.config.file`: TLS and basic auth in the exporter-toolkit format.

The same file every Go exporter accepts (prometheus/exporter-toolkit
docs/web-configuration.md; here docs/deployment.md), so operators reuse what they have.
One module per job:

- `schema`: the file read through exporter/yamlreader.py, every problem reported at
  once with `file:line:col`, into a `WebConfig`;
- `tls`: `TLSSettings` into a server `ssl.SSLContext`;
- `auth`: the per-request basic-auth check against bcrypt hashes;
- `security`: `WebConfig`, the live object the HTTP server asks (exporter.web's
  `WebSecurity`), and `WebConfigError`.
"""

from exporter.webconfig.schema import load_web_config, parse_web_config_text
from exporter.webconfig.security import WebConfig, WebConfigError
from exporter.webconfig.tls import TLSSettings

__all__ = [
    "TLSSettings",
    "WebConfig",
    "WebConfigError",
    "load_web_config",
    "parse_web_config_text",
]
