"""Security headers on every response, and the signing-secrets key (tnt.crypto) loaded at start.

The dashboard runs no inline script or style (static/app.js wires its behaviour; htmx is told not
to inject its indicator <style> and not to eval), so the policy allows only this origin's files.
"""

from . import crypto

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# One year. Not includeSubDomains: other hosts under the operator's domain may not have TLS.
HSTS = "max-age=31536000"


def init_app(app) -> None:
    """Load the secrets key (refusing to start in production without one) and add the headers."""
    crypto.init_app(app)
    production = app.config.get("TNT_ENV") == "production"

    @app.after_request
    def security_headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if production:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
