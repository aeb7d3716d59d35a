"""root-mfa-runbook: an executable, auditable runbook for an AWS root user's MFA device."""

__version__ = "0.1.0"
__all__ = ["__version__"]
