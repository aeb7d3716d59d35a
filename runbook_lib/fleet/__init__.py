"""The fleet audit: the root credentials of every member account of an organization, read
through AssumeRoot (``IAMAuditRootUserCredentials``) from the management account, judged
against named rules (:mod:`.rules`), recorded like a run.
"""
