"""The small boto3 helper library: what AWS allows, and nothing of the runbook's record.

    ============== ==============================================================
    :mod:`.session`    ``AwsContext``: the standard credential chain, adaptive retries,
                       regional STS; ``call`` / ``paginate`` with errors translated
    :mod:`.identity`   caller identity, the account guard, account kind, removal methods
    :mod:`.privileged` ``assume_root`` / ``RootSession``: short AssumeRoot sessions
    :mod:`.state`      ``RootMfaSnapshot`` (every signal), ``judge``, polling waits
    :mod:`.actions`    ``remove_root_mfa_device`` (the only API action AWS offers)
    :mod:`.evidence`   CloudTrail lookups, paced and redacted; what each event proves
    ============== ==============================================================

Collect, then judge, then act: reading functions make the calls, judging functions are pure,
acting functions are dry-run by default and verify afterwards.
"""
